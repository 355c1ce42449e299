"""`python -m workers.order_worker [--concurrency N] [--burst]`."""

from __future__ import annotations

import sys

from order_processor.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", "orders", *sys.argv[1:]]))
