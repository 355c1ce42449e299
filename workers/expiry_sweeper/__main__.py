"""`python -m workers.expiry_sweeper [options]`: `order-processor worker expiry-sweeper`."""

from __future__ import annotations

import sys

from order_processor.bootstrap.programs import main

if __name__ == "__main__":
    sys.exit(main("expiry-sweeper", sys.argv[1:]))
