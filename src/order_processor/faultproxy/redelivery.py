"""SQS's at-least-once delivery on standard queues: a message received may be received
again later, even after it was deleted.

A message chosen for it is kept and added to a later ReceiveMessage answer of the same
queue: same MessageId, body, attributes and MD5s, ApproximateReceiveCount one higher,
and a receipt handle of its own, as SQS gives every receipt. The emulator never issued
that handle, so the proxy answers a delete or visibility change of it itself, with
success, as SQS answers a delete of a message already deleted.
"""

from __future__ import annotations

import copy
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

HANDLE_PREFIX = "faultproxy-redelivery-"


@dataclass
class Redeliveries:
    _waiting: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    _handles: set[str] = field(default_factory=set)

    def remember(self, queue_url: str, message: dict[str, Any]) -> None:
        self._waiting.setdefault(queue_url, deque()).append(copy.deepcopy(message))

    def waiting(self, queue_url: str) -> bool:
        return bool(self._waiting.get(queue_url))

    def take(self, queue_url: str, room: int) -> list[dict[str, Any]]:
        """Up to `room` messages to deliver again, each with a fresh receipt handle."""
        waiting = self._waiting.get(queue_url)
        taken: list[dict[str, Any]] = []
        while waiting and len(taken) < room:
            message = waiting.popleft()
            handle = HANDLE_PREFIX + uuid.uuid4().hex
            self._handles.add(handle)
            message["ReceiptHandle"] = handle
            attributes = message.get("Attributes", {})
            if "ApproximateReceiveCount" in attributes:
                attributes["ApproximateReceiveCount"] = str(
                    int(attributes["ApproximateReceiveCount"]) + 1
                )
            taken.append(message)
        return taken

    def issued(self, handle: str) -> bool:
        return handle in self._handles

    @property
    def any_waiting(self) -> bool:
        return any(self._waiting.values())

    @property
    def any_issued(self) -> bool:
        return bool(self._handles)
