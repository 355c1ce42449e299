"""Found by the issue-21 attacker; each test failed first.

A partial failure of the worker's own move to the DLQ puts a
cancel in the DLQ ahead of the order it cancels; a redrive then replays them reversed.

README: once a command has spent its budget "the worker moves it to the DLQ itself,
together with the later messages of the group that refer to the same order (a cancel must
not overtake the order it cancels) ... A redrive then replays the moved ones in their
order." `Consumer._to_dead_letters` sends them in one SendMessageBatch; an entry SQS fails
(`InternalError`, `SenderFault: false`: what the fault proxy's `partial=r` injects, 5 % in
AWS_BAD_DAY) is handed back (Retry) while the entries after it are counted done and
deleted. The failed PlaceOrder comes back and is moved on its next delivery: behind its
cancel.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from order_processor.messaging.consumer import (
    Ack,
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


class FirstDeadLetterEntryFails:
    """The SQS client, but SQS fails one entry (`index`) of the first SendMessageBatch to
    the DLQ (InternalError, not the sender's fault) and takes the others."""

    def __init__(self, sqs: Any, dlq: str, index: int = 0) -> None:
        self.sqs, self.dlq, self.failed, self.index = sqs, dlq, False, index

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)

    async def send_message_batch(self, QueueUrl: str, Entries: list[Any]) -> Any:
        if QueueUrl != self.dlq or self.failed or len(Entries) < 2:
            return await self.sqs.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)
        self.failed = True
        lost = Entries[self.index]
        rest = [e for e in Entries if e is not lost]
        response = await self.sqs.send_message_batch(QueueUrl=QueueUrl, Entries=rest)
        response.setdefault("Failed", []).append(
            {"Id": lost["Id"], "SenderFault": False, "Code": "InternalError", "Message": "a21"}
        )
        return response


async def test_a_partial_failure_of_the_move_to_the_dlq_keeps_the_groups_order(
    sqs: Any, fifo: tuple[str, str]
) -> None:
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

    consumer = Consumer(
        sqs=cast(Any, FirstDeadLetterEntryFails(sqs, dlq)),
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
    assert sorted(moved) == ["CancelOrder o-1", "PlaceOrder o-1"]  # nothing lost
    assert moved == ["PlaceOrder o-1", "CancelOrder o-1"], "a redrive replays them reversed"


async def test_a_cancel_whose_move_failed_never_runs_ahead_of_its_dead_lettered_order(
    sqs: Any, fifo: tuple[str, str]
) -> None:
    """The other half: the cancel's entry fails, the PlaceOrder's goes through. The cancel
    comes back alone; CommandHandler._run_in_order only follows a failed order within one
    received batch, so alone it is carried out (ORDER_NOT_FOUND, rejected and deleted),
    and the PlaceOrder, redriven after the fix, places an order its user had cancelled."""
    url, dlq = fifo
    for n, kind in enumerate(("PlaceOrder o-1", "CancelOrder o-1")):
        await sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"user": "u1", "n": n, "command": kind}),
            MessageGroupId="u1",
        )
    carried_out: list[str] = []

    async def as_the_handler_does(key: str, messages: list[Message]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        failed = False
        for m in messages:
            command = json.loads(m.body)["command"]
            if command.startswith("PlaceOrder") or failed:
                failed = True
                outcomes[m.message_id] = ToDeadLetters()  # the budget spent, or following it
            else:
                carried_out.append(command)  # no failed order in this batch: it runs
                outcomes[m.message_id] = Ack()
        return outcomes

    consumer = Consumer(
        sqs=cast(Any, FirstDeadLetterEntryFails(sqs, dlq, index=1)),
        queue_url=url,
        handle_group=as_the_handler_does,
        group_of=lambda m: json.loads(m.body)["user"],
        burst=True,
        visibility_timeout=30,
        dead_letter_url=dlq,
        backoff=Backoff(base_seconds=1, max_seconds=1),
    )
    await asyncio.wait_for(consumer.run(), 60)

    assert carried_out == [], "the cancel ran ahead of its order, which waits in the DLQ"
