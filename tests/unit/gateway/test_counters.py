"""The per-replica counters the gateway keeps: failed logins that lock and unlock, receipts
of Idempotency-Keys that are kept a while, token buckets that refill."""

from __future__ import annotations

import pytest

from order_processor.gateway.memory import MemoryAttempts, MemoryReceipts
from order_processor.gateway.ports import Attempts, Receipt, Receipts
from order_processor.gateway.ratelimit import RateLimiter, retry_after
from tests.contracts.counters import (
    KEEP,
    LIMIT,
    LOCKOUT,
    AttemptsContract,
    ReceiptsContract,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_locked_after_its_failures_until_the_lockout_has_passed() -> None:
    clock = Clock()
    attempts = MemoryAttempts(limit=3, lockout_seconds=60, clock=clock)

    answers = [await attempts.failed("user:a") for _ in range(3)]
    clock.now += 59
    still = await attempts.locked_for("user:a")
    clock.now += 1
    after = await attempts.locked_for("user:a")

    assert answers == [0.0, 0.0, 60.0]
    assert (still, after) == (1.0, 0.0)
    assert await attempts.failed("user:a") == 0.0  # counting again from one


async def test_a_success_forgets_the_failures() -> None:
    attempts = MemoryAttempts(limit=2, lockout_seconds=60)
    await attempts.failed("user:b")
    await attempts.cleared("user:b")

    assert await attempts.failed("user:b") == 0.0


async def test_a_receipt_is_kept_for_a_while_and_released_at_once() -> None:
    clock = Clock()
    receipts = MemoryReceipts(keep_seconds=100, clock=clock)
    first, other = Receipt("digest-1", "answer-1"), Receipt("digest-2", "answer-2")

    assert await receipts.claim("alice1", "k", first) is None
    assert await receipts.claim("alice1", "k", other) == first
    assert await receipts.claim("bobby1", "k", other) is None
    await receipts.release("alice1", "k")
    assert await receipts.claim("alice1", "k", other) is None
    clock.now += 100
    assert await receipts.claim("alice1", "k", first) is None


def test_a_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = RateLimiter(rate=2, burst=2, clock=clock)

    taken = [bucket.take("a") for _ in range(3)]
    clock.now += 0.5

    assert taken[:2] == [0.0, 0.0]
    assert taken[2] == 0.5
    assert retry_after(taken[2]) == "1"
    assert bucket.take("a") == 0.0


class TestMemoryAttempts(AttemptsContract):
    @pytest.fixture
    def attempts(self) -> Attempts:
        return MemoryAttempts(limit=LIMIT, lockout_seconds=LOCKOUT)


class TestMemoryReceipts(ReceiptsContract):
    @pytest.fixture
    def receipts(self) -> Receipts:
        return MemoryReceipts(keep_seconds=KEEP)
