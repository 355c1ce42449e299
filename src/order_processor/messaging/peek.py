"""Look for one event on the order-status queue without taking any away.

A CLI waiting for its own command's answer (`convert --wait`) reads the queue the
deployment's followers read, and must not consume what they are owed. Each message it
receives stays hidden only while it looks further (so that the next receive reaches
deeper into a queue with a backlog, instead of being given the same ten again), and
every one, its own event included, is handed back (visibility 0) when it stops: a
follower, or `events tail`, still sees each event, only later. Were the CLI killed, they
come back on their own after `hide_seconds`. The queue has no dead-letter queue, so the
extra receives cost nothing but the receives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import ValidationError

from order_processor.domain.events import Event

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

BATCH = 10  # SQS's most per receive and per visibility batch


@dataclass
class Peek:
    sqs: SQSClient
    queue_url: str
    hide_seconds: int = 30
    _held: list[str] = field(default_factory=list)

    async def find(self, wanted: Callable[[Event], bool], *, wait_seconds: int = 1) -> Event | None:
        """One receive (long-polling up to `wait_seconds`): the first event `wanted`
        accepts, or None."""
        response = await self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=self.hide_seconds,
        )
        found = None
        for message in response.get("Messages", []):
            self._held.append(message["ReceiptHandle"])
            try:
                event = Event.model_validate(json.loads(message["Body"]))
            except (ValueError, ValidationError):
                continue  # not an event of ours
            if found is None and wanted(event):
                found = event
        return found

    async def hand_back(self) -> None:
        """Every message received, visible again at once (a receipt gone stale is a
        message already visible again: its failure is ignored)."""
        held, self._held = self._held, []
        for start in range(0, len(held), BATCH):
            await self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(held[start : start + BATCH])
                ],
            )


@asynccontextmanager
async def peeking(sqs: SQSClient, queue_url: str) -> AsyncIterator[Peek]:
    peek = Peek(sqs, queue_url)
    try:
        yield peek
    finally:
        await peek.hand_back()
