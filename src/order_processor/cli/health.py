"""`order-processor health --program P`: a program's readiness checks, once (for container
health checks without curl). Exit 0 when every dependency answers, 1 otherwise."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from order_processor.bootstrap import open_clients
from order_processor.bootstrap.readiness import PROGRAMS, checks_for
from order_processor.config import Settings
from order_processor.observability import Readiness


def register(verbs: Any) -> None:
    verb = verbs.add_parser(
        "health", help="check once what a program needs (tables, queues, topic); exit 0/1"
    )
    verb.add_argument("--program", choices=PROGRAMS, default="orders")
    verb.add_argument("--output", choices=("text", "json"), default="text")
    verb.set_defaults(run=cmd_health)


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    async def check() -> tuple[bool, list[Any]]:
        async with open_clients(settings) as clients:
            readiness = Readiness(checks_for(args.program, clients), started=True)
            return await readiness.ready()

    ready, results = asyncio.run(check())
    if args.output == "json":
        document = {
            "program": args.program,
            "ready": ready,
            "checks": [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results],
        }
        print(json.dumps(document, indent=2))
    else:
        for result in results:
            mark = "ok  " if result.ok else "FAIL"
            print(f"{mark} {result.name}" + (f": {result.detail}" if result.detail else ""))
        print(f"{args.program}: {'ready' if ready else 'not ready'}")
    return 0 if ready else 1
