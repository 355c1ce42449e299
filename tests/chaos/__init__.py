"""The chaos test: a seeded mixed load while worker, matcher and sweeper processes are
SIGKILLed and restarted, then a drain, then the books recounted from raw DynamoDB items.

`python -m tests.chaos --help` (or `make chaos`) runs it at any size; `test_chaos.py` is
the short run of the normal suite."""
