"""Adversarial delivery to the analytics worker, beside the kills (which redeliver what a
killed worker had in flight), throughout the load:

- every second, copies of real events into its queue: events the order-status queue heard
  (the same bodies SNS delivered to both queues) and `order_event(order)` of orders read
  from the orders table, whatever state they are in then (earlier, non-final states among
  them), all shuffled together;
- a second consumer of its queue, racing the worker for every delivery, puts back what it
  gets delayed by 0 to 5 s each (a new message, so the redrive policy does not count it
  as a receive): about half the deliveries reach the worker shuffled, behind later events
  (a fill applied after later fills of the same position).

After the drain, a finale: a copy of every final order event heard, shuffled with copies
of some earlier ones, so that every final event is delivered at least twice. The views
must count each final order once and equal their rebuild from the orders table, whatever
arrived how often, in whatever order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from order_processor.domain.events import order_event
from order_processor.exceptions import OrderProcessorError
from order_processor.store.orders import OrderDAO
from tests.chaos.observe import StatusEvents

HEARD_PER_ROUND = 8
READ_PER_ROUND = 4
HELD_SECONDS = (0, 5)  # the delay of a held-back delivery
FINALE_EARLIER = 20


@dataclass
class Echoes:
    sqs: Any
    url: str  # the analytics queue
    heard: StatusEvents  # what the order-status queue heard so far
    orders: OrderDAO
    order_ids: Callable[[], list[str]]  # the orders the load has sent so far
    rng: random.Random
    sent: Counter[str] = field(default_factory=Counter)  # copies by source and kind
    held: int = 0  # deliveries held back

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        await asyncio.gather(self._echo(stop, interval), self._hold_back(stop))

    async def _echo(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            bodies = self._heard(HEARD_PER_ROUND) + await self._read(READ_PER_ROUND)
            self.rng.shuffle(bodies)
            await self._send(bodies)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def finale(self) -> None:
        """A copy of every final order event heard, and of some earlier ones, shuffled."""
        heard = self.heard.bodies
        earlier = [b for b in heard if _kind(b) == "earlier"]
        bodies = [b for b in heard if _kind(b) == "final"]
        bodies += self.rng.sample(earlier, min(FINALE_EARLIER, len(earlier)))
        self.sent.update(f"finale {_kind(b)}" for b in bodies)
        copies = [json.dumps(b) for b in bodies]
        self.rng.shuffle(copies)
        await self._send(copies)

    def _heard(self, count: int) -> list[str]:
        bodies = self.heard.bodies
        picked = self.rng.sample(bodies, min(count, len(bodies)))
        self.sent.update(f"heard {_kind(b)}" for b in picked)
        return [json.dumps(b) for b in picked]

    async def _read(self, count: int) -> list[str]:
        ids = self.order_ids()
        found = []
        for order_id in self.rng.sample(ids, min(count, len(ids))):
            with contextlib.suppress(OrderProcessorError):  # not stored (yet, or rejected)
                order = await self.orders.get_order(order_id)
                self.sent[f"table {'final' if order.status.is_terminal else 'earlier'}"] += 1
                found.append(order_event(order).body())
        return found

    async def _send(self, bodies: list[str]) -> None:
        for start in range(0, len(bodies), 10):
            entries = [
                {"Id": str(n), "MessageBody": body}
                for n, body in enumerate(bodies[start : start + 10])
            ]
            response = await self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            assert not response.get("Failed"), response["Failed"]

    async def _hold_back(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._hold_back_once()

    async def _hold_back_once(self) -> None:
        """Take what a short poll brings off the queue and put it back, each message
        delayed (sent again before the original is deleted)."""
        response = await self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,  # not the queue's own 20 s: the stop comes within a second
            VisibilityTimeout=30,
        )
        messages = response.get("Messages", [])
        if not messages:
            return
        entries = [
            {
                "Id": str(n),
                "MessageBody": m["Body"],
                "DelaySeconds": self.rng.randint(*HELD_SECONDS),
            }
            for n, m in enumerate(messages)
        ]
        sent = await self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
        assert not sent.get("Failed"), sent["Failed"]
        handles = [
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
        ]
        await self.sqs.delete_message_batch(QueueUrl=self.url, Entries=handles)
        self.held += len(messages)

    def summary(self) -> str:
        return f"{sum(self.sent.values())} {dict(sorted(self.sent.items()))}, {self.held} held back"


FINAL_TYPES = frozenset({"order.completed", "order.failed", "order.cancelled", "order.expired"})


def _kind(body: dict[str, Any]) -> str:
    event_type = str(body.get("event_type", ""))
    if event_type in FINAL_TYPES:
        return "final"
    return "earlier" if event_type.startswith("order.") else "other"
