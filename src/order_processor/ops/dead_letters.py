"""Dead letters: list them, send them back to their queue (commands, or the analytics
worker's events), purge them.

A redriven message is sent before it is deleted from the DLQ; if the process dies in
between, the next redrive sends it again with the same deduplication id (derived from the
dead letter's id) and the worker's idempotency by command and order id absorbs any second
copy.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from order_processor.domain.commands import peek_identity

LIST_VISIBILITY = 30  # seconds a listed message stays hidden before it is handed back


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_at_ms: int

    @property
    def command_type(self) -> str:
        try:
            document = json.loads(self.body)
        except (ValueError, RecursionError):
            return "unreadable"
        if not isinstance(document, dict):
            return "unknown"
        kind = document.get("type") or document.get("event_type")  # a command or an event
        return str(kind) if kind else "unknown"

    def summary(self) -> dict[str, Any]:
        username, command_id = peek_identity(self.body)
        return {
            "message_id": self.message_id,
            "type": self.command_type,
            "username": username,
            "command_id": command_id,
            "receive_count": self.receive_count,
            "sent_at_ms": self.sent_at_ms,
            "body_bytes": len(self.body.encode()),
        }


@dataclass(frozen=True)
class DeadLetters:
    sqs: Any
    dlq_url: str
    queue_url: str
    fifo: bool

    async def _receive(self, count: int, visibility: int) -> list[DeadLetter]:
        response = await self.sqs.receive_message(
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=min(10, count),
            WaitTimeSeconds=1,
            VisibilityTimeout=visibility,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        return [
            DeadLetter(
                m["MessageId"],
                m["ReceiptHandle"],
                m["Body"],
                int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
                int(m.get("Attributes", {}).get("SentTimestamp", 0)),
            )
            for m in response.get("Messages", [])
        ]

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        """Read without removing: the messages are hidden while listed, then handed back."""
        found: list[DeadLetter] = []
        while len(found) < limit:
            batch = await self._receive(limit - len(found), LIST_VISIBILITY)
            if not batch:
                break
            found += batch
        for start in range(0, len(found), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": d.receipt_handle, "VisibilityTimeout": 0}
                for i, d in enumerate(found[start : start + 10])
            ]
            await self.sqs.change_message_visibility_batch(QueueUrl=self.dlq_url, Entries=entries)
        return found

    async def summary(self, limit: int = 100) -> Counter[str]:
        return Counter(d.command_type for d in await self.list(limit))

    async def redrive(self, limit: int | None = None) -> int:
        moved = 0
        while limit is None or moved < limit:
            batch = await self._receive(10 if limit is None else min(10, limit - moved), 60)
            if not batch:
                return moved
            for letter in batch:
                await self.sqs.send_message(QueueUrl=self.queue_url, **self._message(letter))
                await self.sqs.delete_message(
                    QueueUrl=self.dlq_url, ReceiptHandle=letter.receipt_handle
                )
                moved += 1
        return moved

    def _message(self, letter: DeadLetter) -> dict[str, Any]:
        message: dict[str, Any] = {"MessageBody": letter.body}
        if self.fifo:
            username, _ = peek_identity(letter.body)
            message["MessageGroupId"] = username or f"unreadable-{letter.message_id}"
            # Not the command id: the original send used it, and FIFO would silently drop
            # a resend within its 5-minute window. The dead letter's own id is stable, so
            # a redrive interrupted between send and delete resends the same id.
            message["MessageDeduplicationId"] = f"redrive-{letter.message_id}"
        return message

    async def purge(self) -> int:
        purged = 0
        while batch := await self._receive(10, 60):
            entries = [
                {"Id": str(i), "ReceiptHandle": d.receipt_handle} for i, d in enumerate(batch)
            ]
            await self.sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=entries)
            purged += len(batch)
        return purged
