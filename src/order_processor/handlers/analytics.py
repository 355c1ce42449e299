"""The analytics worker's handler: order events from its queue (subscribed to the events
topic, raw delivery) into the views.

Each message stands alone (its own group: the views do not depend on the arrival order).
Events that count nothing (not final, not an order's, not a conversion) are acknowledged
without a call. A final event, or a conversion, is applied once (see `analytics.store`);
a copy is acknowledged. A message that is not an event, or one without the fields the
views need, cannot become one by waiting: it goes to the analytics dead letters, for an
operator to look at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import ValidationError

from order_processor.analytics.parts import MalformedEvent, Part, part_of
from order_processor.domain.events import Event
from order_processor.domain.ports import MetricsSink, NoMetrics
from order_processor.domain.steps import Step
from order_processor.exceptions import OrderProcessorError
from order_processor.messaging.consumer import Ack, Message, Outcome, Retry, ToDeadLetters
from order_processor.saga.faults import Faults

log = logging.getLogger(__name__)


class ViewsStore(Protocol):
    """Where the views are kept (`analytics.store.AnalyticsStore`)."""

    async def apply(self, part: Part) -> bool: ...


@dataclass(frozen=True)
class AnalyticsHandler:
    store: ViewsStore
    metrics: MetricsSink = field(default_factory=NoMetrics)
    faults: Faults = field(default_factory=Faults)  # crash-after=analytics: the tests' SIGKILL

    def group_of(self, message: Message) -> str:
        return message.message_id

    async def handle_group(self, key: str, messages: list[Message]) -> dict[str, Outcome]:
        return {message.message_id: await self.handle(message) for message in messages}

    async def handle(self, message: Message) -> Outcome:
        try:
            part = part_of(Event.model_validate_json(message.body))
        except (ValidationError, MalformedEvent) as exc:
            log.warning(
                "analytics: message %s is not an event it can count: %s", message.message_id, exc
            )
            self.metrics.inc("analytics_events_total", outcome="malformed")
            return ToDeadLetters()
        if part is None:
            self.metrics.inc("analytics_events_total", outcome="ignored")
            return Ack()
        try:
            applied = await self.store.apply(part)
        except MalformedEvent as exc:  # a fill in another currency than its position's
            log.warning("analytics: event %s cannot be counted: %s", part.event_id, exc)
            self.metrics.inc("analytics_events_total", outcome="malformed")
            return ToDeadLetters()
        except OrderProcessorError as exc:
            log.info("analytics: event %s retried: %s", part.event_id, exc)
            return Retry()
        except Exception:
            log.exception("analytics: event %s failed unexpectedly", part.event_id)
            return Retry()
        if applied:
            self.faults.after_commit(Step.ANALYTICS)  # applied, its message not yet deleted
        self.metrics.inc("analytics_events_total", outcome="applied" if applied else "copy")
        return Ack()
