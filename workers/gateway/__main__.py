"""`python -m workers.gateway [options]`: `order-processor gateway`."""

from __future__ import annotations

import sys

from order_processor.bootstrap.gateway import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
