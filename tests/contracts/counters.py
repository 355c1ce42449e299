"""The contracts of the gateway's counters: `Attempts` (failed logins that lock a key for
a while) and `Receipts` (each user's Idempotency-Keys, kept a while). Run by the
in-memory ones (tests/unit/gateway/test_counters.py) and by the Redis ones
(tests/integration/test_gateway_counters.py). Durations are short and real: Redis keeps
its own time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from order_processor.gateway.ports import Attempts, Receipt, Receipts

LIMIT = 3
LOCKOUT = 0.4
KEEP = 0.4


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


class AttemptsContract:
    @pytest.fixture
    def attempts(self) -> Attempts:
        """Attempts locking after LIMIT failures for LOCKOUT seconds."""
        raise NotImplementedError

    async def test_a_key_is_locked_at_its_limit_and_only_then(self, attempts: Attempts) -> None:
        answers = [await attempts.failed("user:alice") for _ in range(LIMIT)]

        assert answers[:-1] == [0.0] * (LIMIT - 1)
        assert 0 < answers[-1] <= LOCKOUT
        assert 0 < await attempts.locked_for("user:alice") <= LOCKOUT
        assert await attempts.locked_for("user:bobby") == 0.0

    async def test_a_lock_ends_when_its_lockout_has_passed(self, attempts: Attempts) -> None:
        for _ in range(LIMIT):
            await attempts.failed("user:carol")

        async def unlocked() -> bool:
            return await attempts.locked_for("user:carol") == 0.0

        assert await eventually(unlocked)
        assert await attempts.failed("user:carol") == 0.0  # counting from one again

    async def test_a_success_forgets_the_failures(self, attempts: Attempts) -> None:
        for _ in range(LIMIT - 1):
            await attempts.failed("user:dave")
        await attempts.cleared("user:dave")

        assert await attempts.failed("user:dave") == 0.0


class ReceiptsContract:
    @pytest.fixture
    def receipts(self) -> Receipts:
        """Receipts kept KEEP seconds."""
        raise NotImplementedError

    async def test_the_first_request_under_a_key_is_kept_for_that_user(
        self, receipts: Receipts
    ) -> None:
        first, other = Receipt("digest-1", '{"order_id": "a"}'), Receipt("digest-2", "{}")

        assert await receipts.claim("alice1", "key-1", first) is None
        assert await receipts.claim("alice1", "key-1", other) == first
        assert await receipts.claim("bobby1", "key-1", other) is None

    async def test_a_receipt_claimed_unsent_is_told_apart_until_it_is_sent(
        self, receipts: Receipts
    ) -> None:
        sent = Receipt("digest-1", '{"order_id": "a"}')
        sending = Receipt("digest-1", '{"order_id": "a"}', sent=False)

        assert await receipts.claim("alice5", "key-5", sending) is None
        assert await receipts.claim("alice5", "key-5", sent) == sending
        await receipts.sent("alice5", "key-5", sent)
        assert await receipts.claim("alice5", "key-5", sending) == sent

    async def test_a_released_key_may_be_claimed_again(self, receipts: Receipts) -> None:
        first, other = Receipt("digest-1", "{}"), Receipt("digest-2", "{}")
        await receipts.claim("alice2", "key-2", first)
        await receipts.release("alice2", "key-2")

        assert await receipts.claim("alice2", "key-2", other) is None
        assert await receipts.claim("alice2", "key-2", first) == other

    async def test_of_racing_claims_exactly_one_wins(self, receipts: Receipts) -> None:
        claims = [Receipt(f"digest-{n}", "{}") for n in range(20)]

        answers = await asyncio.gather(*(receipts.claim("alice3", "k", c) for c in claims))

        winners = [c for c, kept in zip(claims, answers, strict=True) if kept is None]
        assert len(winners) == 1
        assert {kept for kept in answers if kept is not None} == {winners[0]}

    async def test_a_receipt_is_forgotten_after_its_time(self, receipts: Receipts) -> None:
        await receipts.claim("alice4", "k", Receipt("digest-1", "{}"))

        async def forgotten() -> bool:
            probe = Receipt("probe", "{}")
            kept = await receipts.claim("alice4", "k", probe)
            return kept is None

        assert await eventually(forgotten)
