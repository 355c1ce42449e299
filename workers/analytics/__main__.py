"""`python -m workers.analytics [options]`: `order-processor worker analytics`."""

from __future__ import annotations

import sys

from order_processor.bootstrap.programs import main

if __name__ == "__main__":
    sys.exit(main("analytics", sys.argv[1:]))
