"""StatusFollower: apply status events to a local view, idempotently and in order.

Events may arrive twice (a re-publish after a crash) or out of order (SNS and SQS do not
keep order): an order's event is applied only if its `sequence` is higher than the one
already seen; an event without an order (deposits, rejections) is applied once per id.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import ValidationError

from order_processor.domain.events import Event

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

SEEN_IDS = 100_000  # ids of order-less events remembered, oldest forgotten first


@dataclass
class StatusFollower:
    orders: dict[str, Event] = field(default_factory=dict)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def apply(self, event: Event) -> bool:
        """True if the event changed the view; False for a stale or duplicate one."""
        if event.order_id is not None and event.event_type.value.startswith("order."):
            current = self.orders.get(event.order_id)
            if current is not None and event.sequence <= current.sequence:
                return False
            self.orders[event.order_id] = event
            return True
        if event.event_id in self._seen:
            return False
        self._seen[event.event_id] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        return True

    def status_of(self, order_id: str) -> str | None:
        event = self.orders.get(order_id)
        return event.status if event else None


async def follow(
    sqs: SQSClient,
    queue_url: str,
    follower: StatusFollower,
    on_event: Callable[[Event, bool], None],
    *,
    until: Callable[[], bool],
    wait_seconds: int = 2,
) -> None:
    """Read the order-status queue (raw SNS delivery) until `until()` says stop; every
    event is passed to `on_event` with whether it changed the view, then deleted."""
    while not until():
        response = await sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = response.get("Messages", [])
        for message in messages:
            try:
                event = Event.model_validate(json.loads(message["Body"]))
            except (ValueError, ValidationError):
                continue  # not one of ours; dropped below like any consumed message
            on_event(event, follower.apply(event))
        if messages:
            await sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        await asyncio.sleep(0)
