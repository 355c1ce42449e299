"""The long-running worker programs: thin wiring around order_processor."""
