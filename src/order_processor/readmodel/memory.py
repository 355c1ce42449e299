"""The read model in memory: the unit tests' stand-in for Redis, held to the same contract
suite (`tests/contracts/read_model.py`). Positions are `<n>-0`, as Redis stream ids look.
Entries expire as Redis's do: each after `ttl_seconds` without a write (None: never), the
prices after `price_ttl_seconds`, an event id's duplicate window after `ttl_seconds`."""

from __future__ import annotations

import asyncio
import time
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
    ttl_seconds: float | None = None
    price_ttl_seconds: float = 2.0
    orders: dict[str, Order] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    documents: dict[tuple[str, Document], str] = field(default_factory=dict)
    price_document: str | None = None
    streams: dict[str, list[StreamedEvent]] = field(default_factory=lambda: defaultdict(list))
    seen: dict[tuple[str, str], float] = field(default_factory=dict)  # when it came
    dropped: dict[str, int] = field(default_factory=dict)  # the newest dropped position
    origins: dict[str, int] = field(default_factory=dict)  # a stream's first position
    counter: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    written: dict[tuple[str, ...], float] = field(default_factory=dict)  # key: last write
    prices_written: float = 0.0

    def _check(self) -> None:
        if not self.available:
            raise ReadModelUnavailable("the read model is away")
        self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        if self.price_document is not None and now - self.prices_written > self.price_ttl_seconds:
            self.price_document = None
        if self.ttl_seconds is None:
            return
        ttl = self.ttl_seconds
        self.seen = {key: at for key, at in self.seen.items() if now - at <= ttl}
        for key in [key for key, at in self.written.items() if now - at > ttl]:
            del self.written[key]
            self._forget(key)

    def _forget(self, key: tuple[str, ...]) -> None:
        what, name = key[0], key[1]
        if what == "order":
            self.orders.pop(name, None)
        elif what == "generation":
            self.generations.pop(name, None)
        elif what == "document":
            self.documents.pop((name, Document(key[2])), None)
        else:
            for kept in (self.streams, self.dropped, self.origins):
                kept.pop(name, None)

    def _wrote(self, *key: str) -> None:
        self.written[key] = time.monotonic()

    async def apply(self, event: Event) -> bool:
        self._check()
        username = event.username
        if username is None or (username, event.event_id) in self.seen:
            return False
        self.seen[(username, event.event_id)] = time.monotonic()
        self._apply_to_order(event, username)
        self.generations[username] += 1
        self._wrote("generation", username)
        for kind in Document:
            self.documents.pop((username, kind), None)
        self.counter += 1
        if username not in self.streams:  # made anew: a position from before it is a gap
            self.origins[username] = self.counter
        self._wrote("stream", username)
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
                self._wrote("order", kept.order_id)
            return
        # an event of another user never takes over an order's entry
        newer = kept is None or (kept.sequence < event.sequence and kept.username == username)
        if event.order_id and event.data.get("order_id") == event.order_id and newer:
            self.orders[event.order_id] = Order.model_validate(event.data)
            self._wrote("order", event.order_id)

    async def order(self, order_id: str) -> Order | None:
        self._check()
        return self.orders.get(order_id)

    async def fill_order(self, order: Order) -> bool:
        self._check()
        kept = self.orders.get(order.order_id)
        if kept is not None and kept.sequence >= order.sequence:
            return False
        self.orders[order.order_id] = order
        self._wrote("order", order.order_id)
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
        self._wrote("document", username, kind.value)
        self._wrote("generation", username)
        return True

    async def prices(self) -> str | None:
        self._check()
        return self.price_document

    async def fill_prices(self, body: str) -> None:
        self._check()
        self.price_document = body
        self.prices_written = time.monotonic()

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
        trimmed = after < self.dropped.get(username, 0)
        gone = username not in self.streams or after < self.origins[username]
        return StreamRead(later[:limit], gap=trimmed or (after > 0 and gone))

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
