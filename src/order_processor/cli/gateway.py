"""`order-processor gateway [--host H] [--port P] [--metrics-port M]`: the HTTP API."""

from __future__ import annotations

import argparse
from typing import Any

from order_processor.bootstrap.arguments import add_gateway_arguments
from order_processor.config import Settings


def register(verbs: Any) -> None:
    verb = verbs.add_parser(
        "gateway",
        help="the HTTP API for end users (also python -m workers.gateway)",
        description="Log in, place and follow orders over HTTP, with a live event stream.",
    )
    add_gateway_arguments(verb)
    verb.set_defaults(run=cmd_gateway)


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: FastAPI, uvicorn and Redis cost every other verb 0.4 s at start.
    from order_processor.bootstrap.gateway import run_gateway

    return run_gateway(args, settings)
