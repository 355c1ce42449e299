"""What the CLI verbs share: clients for one command, JSON output, `--output`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from order_processor.aws import sync_clients
from order_processor.bootstrap import AwsClients, open_clients
from order_processor.cli.failures import annotate
from order_processor.config import Settings


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
