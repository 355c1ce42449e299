"""Found by the issue-21 attacker; each test failed first.

A partial failure of the worker's own move to the DLQ puts a
cancel in the DLQ ahead of the order it cancels; a redrive then replays them reversed.

README: once a command has spent its budget "the worker moves it to the DLQ itself,
together with the later messages of the group that refer to the same order (a cancel must
not overtake the order it cancels) ... A redrive then replays the moved ones in their
order." `Consumer._to_dead_letters` sent them in one SendMessageBatch; an entry SQS failed
(`InternalError`, `SenderFault: false`: what the fault proxy's `partial=r` injects, 5 % in
AWS_BAD_DAY) was handed back (Retry) while the entries after it were counted done and
deleted. The failed PlaceOrder came back and was moved on its next delivery: behind its
cancel. Now they are moved one at a time, in order, and one that cannot be moved comes
back with every one after it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from order_processor.messaging.consumer import (
    BATCH_ATTEMPTS,
    Backoff,
    Consumer,
    Message,
    Outcome,
    ToDeadLetters,
)
from tests.integration.messaging.conftest import queue_with_dead_letters


@pytest.fixture
async def fifo(sqs: Any) -> AsyncIterator[tuple[str, str]]:
    async with queue_with_dead_letters(sqs, fifo=True, max_receives=50) as urls:
        yield urls


class DeadLetterMoveFails:
    """The SQS client, but SQS fails every send to the DLQ of the message whose body names
    `command` (InternalError, not the sender's fault) for the first `times` sends of it,
    however many entries a call carries; everything else goes through."""

    def __init__(
        self, sqs: Any, dlq: str, command: str, times: int, *, sender_fault: bool = False
    ) -> None:
        self.sqs, self.dlq, self.command, self.left, self.failed = sqs, dlq, command, times, 0
        self.sender_fault = sender_fault

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)

    async def send_message_batch(self, QueueUrl: str, Entries: list[Any]) -> Any:
        def doomed(entry: Any) -> bool:
            return QueueUrl == self.dlq and self.left > 0 and self.command in entry["MessageBody"]

        lost = [e for e in Entries if doomed(e)]
        rest = [e for e in Entries if not doomed(e)]
        self.left -= len(lost)
        self.failed += len(lost)
        response = (
            await self.sqs.send_message_batch(QueueUrl=QueueUrl, Entries=rest)
            if rest
            else {"Successful": []}
        )
        response.setdefault("Failed", []).extend(
            {
                "Id": e["Id"],
                "SenderFault": self.sender_fault,
                "Code": "KMS.AccessDeniedException" if self.sender_fault else "InternalError",
                "Message": "a21",
            }
            for e in lost
        )
        return response


@pytest.mark.parametrize(
    ("sender_fault", "failures"),
    [(False, BATCH_ATTEMPTS), (True, 1)],
    ids=["sqs failed it every try", "sqs refused it as the sender's fault"],
)
async def test_a_failed_move_to_the_dlq_loses_nothing_and_keeps_the_groups_order(
    sqs: Any, fifo: tuple[str, str], sender_fault: bool, failures: int
) -> None:
    """A refusal (a DLQ whose KMS key the worker may not use, say) is not tried again in
    the batch, and never counted as moved: the message comes back, it is not deleted."""
    url, dlq = fifo
    for n, kind in enumerate(("PlaceOrder o-1", "CancelOrder o-1")):
        await sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"user": "u1", "n": n, "command": kind}),
            MessageGroupId="u1",
        )

    async def budget_spent(key: str, messages: list[Message]) -> dict[str, Outcome]:
        # What CommandHandler._run_in_order answers: the PlaceOrder has spent its budget,
        # the cancel of the same order follows it to the dead letters.
        return {m.message_id: ToDeadLetters() for m in messages}

    moves = DeadLetterMoveFails(sqs, dlq, "PlaceOrder", times=failures, sender_fault=sender_fault)
    consumer = Consumer(
        sqs=cast(Any, moves),
        queue_url=url,
        handle_group=budget_spent,
        group_of=lambda m: json.loads(m.body)["user"],
        burst=True,
        visibility_timeout=30,
        dead_letter_url=dlq,
        backoff=Backoff(base_seconds=1, max_seconds=1),
    )
    await asyncio.wait_for(consumer.run(), 60)

    moved: list[str] = []
    for _ in range(3):
        answer = await sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for raw in answer.get("Messages", []):
            moved.append(json.loads(raw["Body"])["command"])
            await sqs.delete_message(QueueUrl=dlq, ReceiptHandle=raw["ReceiptHandle"])
    assert moves.failed == failures  # the first delivery's move failed
    assert sorted(moved) == ["CancelOrder o-1", "PlaceOrder o-1"]  # nothing lost
    assert moved == ["PlaceOrder o-1", "CancelOrder o-1"], "a redrive replays them reversed"
