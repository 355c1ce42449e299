"""`order-processor gateway [--host H] [--port P] [--metrics-port M]`: the HTTP API."""

from __future__ import annotations

import argparse
from typing import Any

from order_processor.bootstrap.gateway import add_arguments, run_gateway
from order_processor.config import Settings


def register(verbs: Any) -> None:
    verb = verbs.add_parser(
        "gateway",
        help="the HTTP API for end users (also python -m workers.gateway)",
        description="Log in, place and follow orders over HTTP, with a live event stream.",
    )
    add_arguments(verb)
    verb.set_defaults(run=cmd_gateway)


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    return run_gateway(args, settings)
