"""The cache worker: every event into the gateway's read model (Redis)."""
