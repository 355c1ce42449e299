"""`python -m workers.expiry_sweeper [--interval S] [--once] [--now ISO]`."""

from __future__ import annotations

import sys

from order_processor.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", "expiry-sweeper", *sys.argv[1:]]))
