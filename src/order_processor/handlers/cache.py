"""The cache worker's handler: every event from its queue (subscribed to the events topic,
raw delivery) into the gateway's read model.

Each message stands alone (its own group): the model keeps the newest state whatever the
arrival order, and drops a copy. A message that is not an event cannot become one by
waiting: it is dropped, with a log line and a count, never retried. An event without a
user changes nothing the gateway reads. The read model away (Redis down, timed out): the
message is handed back, visible again after a growing backoff, and applied when it is back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import ValidationError

from order_processor.domain.events import Event
from order_processor.domain.ports import MetricsSink, NoMetrics
from order_processor.messaging.consumer import Ack, Message, Outcome, Retry
from order_processor.readmodel.ports import ReadModel, ReadModelUnavailable

log = logging.getLogger(__name__)


class CacheOutcome(StrEnum):
    """What became of an event (`cache_events_total`'s label)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    MALFORMED = "malformed"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class CacheHandler:
    model: ReadModel
    metrics: MetricsSink = field(default_factory=NoMetrics)

    def group_of(self, message: Message) -> str:
        return message.message_id

    async def handle_group(self, key: str, messages: list[Message]) -> dict[str, Outcome]:
        return {message.message_id: await self.handle(message) for message in messages}

    async def handle(self, message: Message) -> Outcome:
        try:
            event = Event.model_validate_json(message.body)
        except ValidationError as exc:
            log.warning("cache: message %s is not an event, dropped: %s", message.message_id, exc)
            return self._counted(CacheOutcome.MALFORMED, Ack())
        if event.username is None:
            return self._counted(CacheOutcome.IGNORED, Ack())
        started = time.monotonic()
        try:
            applied = await self.model.apply(event)
        except ReadModelUnavailable as exc:
            log.warning(
                "cache: event %s handed back, the read model is away: %s", event.event_id, exc
            )
            return self._counted(CacheOutcome.UNAVAILABLE, Retry())
        self.metrics.observe("cache_apply_seconds", time.monotonic() - started)
        return self._counted(CacheOutcome.APPLIED if applied else CacheOutcome.DUPLICATE, Ack())

    def _counted(self, outcome: CacheOutcome, result: Outcome) -> Outcome:
        self.metrics.inc("cache_events_total", outcome=outcome.value)
        return result
