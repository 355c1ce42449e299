"""The analytics worker: order events → the analytics views."""
