"""`python -m workers.limit_matcher [--burst]`."""

from __future__ import annotations

import sys

from order_processor.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", "limit-matcher", *sys.argv[1:]]))
