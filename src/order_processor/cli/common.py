"""What the CLI verbs share: clients for one command, JSON output, the queue URL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from order_processor.bootstrap import AwsClients, open_clients
from order_processor.config import Settings


def with_clients(settings: Settings, action: Callable[[AwsClients], Awaitable[int]]) -> int:
    async def run() -> int:
        async with open_clients(settings) as clients:
            return await action(clients)

    return asyncio.run(run())


def print_json(value: BaseModel | dict[str, Any] | list[Any]) -> None:
    if isinstance(value, BaseModel):
        print(value.model_dump_json(indent=2, by_alias=True))
    else:
        print(json.dumps(value, indent=2, default=str))
