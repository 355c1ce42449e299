"""What the CLI verbs share: clients for one command, JSON output, `--output`, waiting
until the matcher applied an update."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from order_processor.aws import sync_clients
from order_processor.bootstrap import AwsClients, open_clients
from order_processor.cli.failures import annotate
from order_processor.config import Settings
from order_processor.domain.commands import UpdatePrice, UpdateRate


def with_clients(settings: Settings, action: Callable[[AwsClients], Awaitable[int]]) -> int:
    async def run() -> int:
        async with open_clients(settings) as clients:
            for client in (clients.dynamodb, clients.sqs, clients.sns):
                annotate(client)
            return await action(clients)

    return asyncio.run(run())


def print_json(value: BaseModel | dict[str, Any] | list[Any]) -> None:
    if isinstance(value, BaseModel):
        print(value.model_dump_json(indent=2, by_alias=True))
    else:
        print(json.dumps(value, indent=2, default=str))


def cli_clients(settings: Settings, *services: str) -> list[Any]:
    """boto3 clients of one session whose errors name the resource of their request."""
    return [annotate(client) for client in sync_clients(settings, *services)]


def add_output_argument(verb: Any) -> None:
    verb.add_argument(
        "--output",
        choices=["text", "json"],
        default="text",
        help="json: one JSON document on standard output, for scripts",
    )


@dataclass(frozen=True)
class Observation:
    """What the matcher stored (an asset, a rate), the update that set it, and when that
    update observed it; `shown` is None while nothing is stored."""

    shown: BaseModel | None
    command_id: str | None
    as_of: datetime | None


async def wait_until_applied(
    update: UpdatePrice | UpdateRate,
    stored: Callable[[], Awaitable[Observation]],
    seconds: float,
    what: str,
) -> int:
    """Poll what is stored until it is `update`'s (print it: 0), a newer observation
    stands (print it: 0), or `seconds` pass (1)."""
    deadline = time.monotonic() + seconds
    while True:
        found = await stored()
        if found.shown is not None and found.command_id == update.command_id:
            print_json(found.shown)
            return 0
        if found.shown is not None and found.as_of is not None and found.as_of > update.issued_at:
            # A newer observation stands: this one was applied before it, or arrived
            # after it and was not. Either way, sending it again would change nothing.
            print_json(found.shown)
            print(
                f"order-processor: a newer {what} (observed {found.as_of}) stands", file=sys.stderr
            )
            return 0
        if time.monotonic() > deadline:
            print(
                f"order-processor: sent ({update.command_id}); not applied within "
                f"{seconds:g} s: is the limit matcher running? (a newer {what}, "
                "or this machine's clock beyond the skew, is refused)",
                file=sys.stderr,
            )
            return 1
        await asyncio.sleep(0.2)
