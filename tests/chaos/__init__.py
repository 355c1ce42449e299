"""The chaos test: a seeded mixed load while worker, matcher, sweeper and analytics
processes are SIGKILLed and restarted (and the analytics worker is sent copies of events,
shuffled), then a drain, then the books recounted from raw DynamoDB items and the
analytics views compared with their rebuild from the orders table.

`python -m tests.chaos --help` (or `make chaos`) runs it at any size; `test_chaos.py` is
the short run of the normal suite."""
