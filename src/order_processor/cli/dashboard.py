"""`order-processor dashboard [--host H] [--port P]`: the read-only web page."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from order_processor.config import Settings
from order_processor.dashboard.app import DEFAULT_PORT, running_dashboard


def register(verbs: Any) -> None:
    verb = verbs.add_parser(
        "dashboard",
        help="a web page with the views, queues, books and audit, live (it never writes)",
    )
    verb.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    verb.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"(default {DEFAULT_PORT}; 0: a free one)"
    )
    verb.set_defaults(run=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    async def serve() -> int:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        async with running_dashboard(settings, args.host, args.port) as url:
            print(f"dashboard: {url}", flush=True)
            await stopping.wait()
        return 0

    return asyncio.run(serve())
