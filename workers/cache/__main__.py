"""`python -m workers.cache [options]`: `order-processor worker cache`."""

from __future__ import annotations

import sys

from order_processor.bootstrap.programs import main

if __name__ == "__main__":
    sys.exit(main("cache", sys.argv[1:]))
