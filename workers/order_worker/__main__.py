"""`python -m workers.order_worker [options]`: `order-processor worker orders`."""

from __future__ import annotations

import sys

from order_processor.bootstrap.programs import main

if __name__ == "__main__":
    sys.exit(main("orders", sys.argv[1:]))
