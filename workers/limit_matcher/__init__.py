"""The limit matcher: price updates → triggered limit orders → ExecuteOrder commands."""
