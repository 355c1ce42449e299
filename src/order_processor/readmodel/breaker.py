"""`Breaker`: a read model that, once its model failed to answer, says it is away at once
for `pause_seconds` instead of asking again.

A Redis that accepts connections but never answers costs each call its socket timeouts
(seconds, with the client's retry); the gateway reads the model before DynamoDB on every
request, so without the breaker each request would wait out those timeouts before its
fallback. With it, one call a pause pays them; the others go to DynamoDB at once. `ping`
(the readiness check) always asks: it reports the model as it is."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from order_processor.domain.events import Event
from order_processor.domain.orders import Order
from order_processor.readmodel.ports import (
    Document,
    ReadModel,
    ReadModelUnavailable,
    StreamedEvent,
    StreamRead,
)

T = TypeVar("T")


@dataclass
class Breaker:
    model: ReadModel
    pause_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _away_until: float = field(default=0.0, init=False)

    async def _asked(self, call: Callable[[], Awaitable[T]]) -> T:
        if self.clock() < self._away_until:
            raise ReadModelUnavailable("the read model failed a moment ago: not asked")
        try:
            return await call()
        except ReadModelUnavailable:
            self._away_until = self.clock() + self.pause_seconds
            raise

    async def apply(self, event: Event) -> bool:
        return await self._asked(lambda: self.model.apply(event))

    async def order(self, order_id: str) -> Order | None:
        return await self._asked(lambda: self.model.order(order_id))

    async def fill_order(self, order: Order) -> bool:
        return await self._asked(lambda: self.model.fill_order(order))

    async def generation(self, username: str) -> int:
        return await self._asked(lambda: self.model.generation(username))

    async def document(self, username: str, kind: Document) -> str | None:
        return await self._asked(lambda: self.model.document(username, kind))

    async def fill_document(
        self, username: str, kind: Document, body: str, generation: int
    ) -> bool:
        return await self._asked(lambda: self.model.fill_document(username, kind, body, generation))

    async def prices(self) -> str | None:
        return await self._asked(self.model.prices)

    async def fill_prices(self, body: str) -> None:
        await self._asked(lambda: self.model.fill_prices(body))

    async def tail(self, username: str) -> str:
        return await self._asked(lambda: self.model.tail(username))

    async def events_after(self, username: str, position: str | None, limit: int) -> StreamRead:
        return await self._asked(lambda: self.model.events_after(username, position, limit))

    async def wait_events(
        self, positions: Mapping[str, str], wait_seconds: float
    ) -> dict[str, list[StreamedEvent]]:
        return await self._asked(lambda: self.model.wait_events(positions, wait_seconds))

    async def ping(self) -> None:
        await self.model.ping()
