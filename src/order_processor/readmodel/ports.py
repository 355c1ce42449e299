"""The read model's port: what the gateway reads before DynamoDB and the cache worker
writes from the events topic.

Entries, and why no late or duplicate event can overwrite a newer state:
- **an order's latest state**, versioned by its `sequence`: replaced only by a newer one,
  whether an event's or a fill's from DynamoDB. A command the gateway sent that no worker
  has taken yet is a placeholder at sequence 0 (the first event replaces it); a placeholder
  whose command is rejected becomes FAILED with the rejection's reason.
- **a user's documents** (balances, portfolio), filled from DynamoDB on a miss under the
  user's *generation*: every event of the user bumps the generation and drops the
  documents, and a fill whose generation moved since its DynamoDB read began is refused, so
  a read that raced an event never caches the state from before it.
- **prices**: one document, filled on a miss, kept a few seconds (price updates are not
  events on the topic).
- **each user's recent events**, a stream in order of arrival, each event once (by
  `event_id`); a position in it is what `Last-Event-ID` names.
Every entry expires after the model's TTL at most: the bound on staleness when the cache
worker is away; while it runs, a read is as old as the event delivery's lag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from order_processor.domain.events import Event
from order_processor.domain.orders import Order


class Document(StrEnum):
    """A user's documents the gateway caches whole, under the user's generation."""

    BALANCES = "balances"
    PORTFOLIO = "portfolio"


@dataclass(frozen=True)
class StreamedEvent:
    """One event in a user's stream; `position` is its id there (SSE's `id:`)."""

    position: str
    event: Event


@dataclass(frozen=True)
class StreamRead:
    """What follows a position. `gap`: the position is older than the oldest event kept
    (or unknown), so events may have been missed: the client re-reads its state."""

    events: list[StreamedEvent] = field(default_factory=list)
    gap: bool = False


class ReadModelUnavailable(Exception):
    """The read model cannot answer (Redis away, timed out): read DynamoDB instead."""


class ReadModel(Protocol):
    """Every method raises `ReadModelUnavailable` when the model cannot answer."""

    async def apply(self, event: Event) -> bool:
        """One event from the topic, in any order, any number of times: its order's entry
        if newer, the user's generation bumped and documents dropped, the event appended
        to the user's stream once. False when it changed nothing (a duplicate)."""
        ...

    async def order(self, order_id: str) -> Order | None: ...

    async def fill_order(self, order: Order) -> bool:
        """Keep `order` unless a state as new or newer is kept; True when kept."""
        ...

    async def generation(self, username: str) -> int: ...

    async def document(self, username: str, kind: Document) -> str | None: ...

    async def fill_document(
        self, username: str, kind: Document, body: str, generation: int
    ) -> bool:
        """Keep `body`, read after the user's generation was `generation`, unless an
        event moved it since; True when kept."""
        ...

    async def prices(self) -> str | None: ...

    async def fill_prices(self, body: str) -> None: ...

    async def tail(self, username: str) -> str:
        """The position of the user's latest event ("0-0" before the first): where a
        stream that does not resume starts."""
        ...

    async def events_after(self, username: str, position: str | None, limit: int) -> StreamRead:
        """Up to `limit` of the user's events after `position` (None: from the oldest
        kept, without a gap)."""
        ...

    async def wait_events(
        self, positions: Mapping[str, str], wait_seconds: float
    ) -> dict[str, list[StreamedEvent]]:
        """The events after each user's position, waiting up to `wait_seconds` for
        the first; one call for any number of users (one connection per gateway)."""
        ...

    async def ping(self) -> None: ...
