"""Watching a deployment from outside: the order-status queue (every event SNS
delivered), the depth of the queues, and the dead letters."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEPTH_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


async def depth(sqs: Any, url: str) -> int:
    """Visible, in flight and delayed messages together."""
    response = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=DEPTH_ATTRIBUTES)
    return sum(int(v) for v in response.get("Attributes", {}).values())


@dataclass
class StatusEvents:
    """Every message of the order-status queue, as received (duplicates included)."""

    sqs: Any
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def poll(self, wait: int = 1) -> int:
        response = await self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        )
        messages = response.get("Messages", [])
        self.bodies += [json.loads(m["Body"]) for m in messages]
        if messages:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            await self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
        return len(messages)

    async def follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()

    async def drain(self, quiet: float, seconds: float) -> bool:
        """Long-poll until nothing arrived for `quiet` seconds and the queue is empty (SNS
        delivers asynchronously), or `seconds` passed; True if it went quiet."""
        deadline = time.monotonic() + seconds
        last = time.monotonic()
        while time.monotonic() < deadline:
            if await self.poll():
                last = time.monotonic()
            elif time.monotonic() - last >= quiet and await depth(self.sqs, self.url) == 0:
                return True
        return False

    def save(self, path: Path) -> None:
        """Every event as heard, one JSON document a line (for the operator)."""
        path.write_text("".join(json.dumps(b, sort_keys=True) + "\n" for b in self.bodies))

    # views

    def of_orders(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for body in self.bodies:
            if str(body.get("event_type", "")).startswith("order.") and body.get("order_id"):
                found[body["order_id"]].append(body)
        return found

    def rejections(self) -> dict[str, set[str]]:
        """Command id -> the reasons it was rejected with."""
        found: dict[str, set[str]] = defaultdict(set)
        for body in self.bodies:
            if body.get("event_type") == "command.rejected":
                data = body.get("data", {})
                found[str(data.get("command_id"))].add(str(data.get("reason")))
        return found

    def funds_applied(self) -> set[str]:
        """Command ids of the deposits and withdrawals announced as applied."""
        kinds = {"balance.deposited", "balance.withdrawn"}
        return {
            str(b.get("data", {}).get("transaction_id"))
            for b in self.bodies
            if b.get("event_type") in kinds
        }

    def conversions_applied(self) -> dict[str, dict[str, Any]]:
        """Conversion id -> its balance.converted event's data (the last copy heard)."""
        return {
            str(b.get("data", {}).get("conversion_id")): b.get("data", {})
            for b in self.bodies
            if b.get("event_type") == "balance.converted"
        }

    def by_event_id(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for body in self.bodies:
            found[str(body.get("event_id"))].append(body)
        return found


async def dead_letters(sqs: Any, url: str) -> list[dict[str, Any]]:
    """The DLQ's messages, read (and left there: hidden for a minute, then visible)."""
    letters: list[dict[str, Any]] = []
    while True:
        response = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=60,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return letters
        letters += [_letter(m) for m in messages]


def _letter(message: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = {"unreadable": message["Body"][:200]}
    return body if isinstance(body, dict) else {"unreadable": str(body)[:200]}
