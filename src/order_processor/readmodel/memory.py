"""The read model in memory: the unit tests' stand-in for Redis, held to the same contract
suite (`tests/contracts/read_model.py`). Positions are `<n>-0`, as Redis stream ids look."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import Order, OrderStatus
from order_processor.readmodel.ports import (
    Document,
    ReadModelUnavailable,
    StreamedEvent,
    StreamRead,
)


@dataclass
class MemoryReadModel:
    """`stream_length`: events kept per user (the oldest dropped first). `available`
    False: every call raises ReadModelUnavailable, as Redis away would."""

    stream_length: int = 1000
    available: bool = True
    orders: dict[str, Order] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    documents: dict[tuple[str, Document], str] = field(default_factory=dict)
    price_document: str | None = None
    streams: dict[str, list[StreamedEvent]] = field(default_factory=lambda: defaultdict(list))
    seen: set[tuple[str, str]] = field(default_factory=set)
    dropped: dict[str, int] = field(default_factory=dict)  # the newest dropped position
    counter: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def _check(self) -> None:
        if not self.available:
            raise ReadModelUnavailable("the read model is away")

    async def apply(self, event: Event) -> bool:
        self._check()
        username = event.username
        if username is None or (username, event.event_id) in self.seen:
            return False
        self.seen.add((username, event.event_id))
        self._apply_to_order(event, username)
        self.generations[username] += 1
        for kind in Document:
            self.documents.pop((username, kind), None)
        self.counter += 1
        stream = self.streams[username]
        stream.append(StreamedEvent(f"{self.counter}-0", event))
        excess = max(0, len(stream) - self.stream_length)
        if excess:
            self.dropped[username] = _number(stream[excess - 1].position) or 0
            del stream[:excess]
        self.arrived.set()
        self.arrived = asyncio.Event()
        return True

    def _apply_to_order(self, event: Event, username: str) -> None:
        kept = self.orders.get(event.order_id or "")
        if event.event_type is EventType.COMMAND_REJECTED:
            if kept is not None and kept.sequence == 0 and kept.username == username:
                reason = str(event.data.get("reason", ""))
                self.orders[kept.order_id] = kept.evolve(
                    status=OrderStatus.FAILED, failure_reason=reason
                )
            return
        newer = kept is None or kept.sequence < event.sequence
        if event.order_id and event.data.get("order_id") == event.order_id and newer:
            self.orders[event.order_id] = Order.model_validate(event.data)

    async def order(self, order_id: str) -> Order | None:
        self._check()
        return self.orders.get(order_id)

    async def fill_order(self, order: Order) -> bool:
        self._check()
        kept = self.orders.get(order.order_id)
        if kept is not None and kept.sequence >= order.sequence:
            return False
        self.orders[order.order_id] = order
        return True

    async def generation(self, username: str) -> int:
        self._check()
        return self.generations[username]

    async def document(self, username: str, kind: Document) -> str | None:
        self._check()
        return self.documents.get((username, kind))

    async def fill_document(
        self, username: str, kind: Document, body: str, generation: int
    ) -> bool:
        self._check()
        if self.generations[username] != generation:
            return False
        self.documents[(username, kind)] = body
        return True

    async def prices(self) -> str | None:
        self._check()
        return self.price_document

    async def fill_prices(self, body: str) -> None:
        self._check()
        self.price_document = body

    async def tail(self, username: str) -> str:
        self._check()
        stream = self.streams.get(username)
        return stream[-1].position if stream else "0-0"

    async def events_after(self, username: str, position: str | None, limit: int) -> StreamRead:
        self._check()
        stream = self.streams.get(username, [])
        if position is None:
            return StreamRead(stream[:limit])
        after = _number(position)
        if after is None:
            return StreamRead(stream[:limit], gap=True)
        later = [e for e in stream if (_number(e.position) or 0) > after]
        return StreamRead(later[:limit], gap=after < self.dropped.get(username, 0))

    async def wait_events(
        self, positions: Mapping[str, str], wait_seconds: float
    ) -> dict[str, list[StreamedEvent]]:
        self._check()
        found = await self._after_each(positions)
        if not found:
            arrived = self.arrived
            try:
                await asyncio.wait_for(arrived.wait(), wait_seconds)
            except TimeoutError:
                return {}
            found = await self._after_each(positions)
        return found

    async def _after_each(self, positions: Mapping[str, str]) -> dict[str, list[StreamedEvent]]:
        found = {}
        for username, position in positions.items():
            events = (await self.events_after(username, position, self.stream_length)).events
            if events:
                found[username] = events
        return found

    async def ping(self) -> None:
        self._check()


def _number(position: str) -> int | None:
    head, _, tail = position.partition("-")
    if not head.isdigit() or tail not in ("0", ""):
        return None
    return int(head)
