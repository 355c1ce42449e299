"""Each port's contract, written once: an abstract suite that every adapter of the port
runs by subclassing it, the in-memory fakes included (tests/unit/test_contracts.py,
tests/integration/store/test_contracts.py)."""
