"""`python -m workers.limit_matcher [options]`: `order-processor worker limit-matcher`."""

from __future__ import annotations

import sys

from order_processor.bootstrap.programs import main

if __name__ == "__main__":
    sys.exit(main("limit-matcher", sys.argv[1:]))
