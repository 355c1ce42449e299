"""Found by the issue-21 attacker; each test failed first.

Transient hand-backs spend the queue's 50-receive backstop in about
21 minutes, so a partial outage (DynamoDB or SNS away, SQS answering) sends every good
command waiting on the queue to the dead letters.

README ("A bad message never takes good ones down with it..."): "AWS being unwell never
sends a good one to the DLQ", and `maxReceiveCount` (50) "is a backstop for what never
gets answered (a message that kills its worker, an outage of an hour) ... so it is sized
to outlast them". A full outage stops the receives too, and the count stands still. A
DynamoDB-only outage does not: each delivery is retried in place for 10 s and handed back
after at most 20 s (TRANSIENT_BACKOFF), so the receives keep coming, every one counted,
and on the 50th the worker itself moves the message to the DLQ (`_run_in_order`).

The test runs the real CommandHandler against a ledger that is always unavailable
(DynamoDB away, as on 2025-10-20 in us-east-1 for about three hours), on a virtual clock:
the time in place (`time.monotonic`, `asyncio.sleep`) and the hand-back delays it chose.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from order_processor.messaging.consumer import Retry, ToDeadLetters
from tests.unit.test_command_handler import THROTTLED, delivery, deposit, flaky_handler
from tests.unit.test_saga import USER

AN_HOUR = 3600.0
_real_sleep = asyncio.sleep


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await _real_sleep(0)


async def test_a_dynamodb_outage_of_an_hour_never_dead_letters_a_good_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = VirtualClock()
    monkeypatch.setattr("time.monotonic", clock.monotonic)
    monkeypatch.setattr("asyncio.sleep", clock.sleep)
    random.seed(21)
    # The production settings: 10 s in place, the queue's backstop at 50 receives.
    commands, _, failures = flaky_handler(*[THROTTLED] * 100_000, transient_seconds=10.0)
    body = deposit("c-1", "10")

    dead_lettered_at = None
    receive = 0
    while clock.now < AN_HOUR:
        receive += 1
        outcome = (await commands.handle_group(USER, [delivery(receive, body)]))["m-1"]
        if isinstance(outcome, ToDeadLetters):
            dead_lettered_at = clock.now
            break
        assert isinstance(outcome, Retry)
        clock.now += outcome.delay or 0  # invisible that long, then received again

    assert failures.attempts == {}  # never counted as failed...
    assert dead_lettered_at is None, (  # ...and yet dead-lettered
        f"a good command went to the DLQ after {dead_lettered_at / 60:.1f} minutes of a "
        f"DynamoDB outage (receive {receive})"
    )
