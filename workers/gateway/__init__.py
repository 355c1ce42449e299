"""The gateway: the HTTP API end users call (`order-processor gateway`)."""
