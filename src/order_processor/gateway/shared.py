"""Failed logins and Idempotency-Key receipts kept in Redis, so that every replica of the
gateway sees the same: N replicas no longer allow N times the login attempts, and a retry
that reaches another replica is answered as the first request was (or refused, 409).

Redis away: each falls back to its in-memory twin (per replica, as before) and says so
once in the log; the answers go on. Keys are single: no hash tag is needed in a cluster
(the client a single node's or a cluster's, as the read model's)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from order_processor.gateway.memory import MemoryAttempts, MemoryReceipts
from order_processor.gateway.ports import PENDING_SECONDS, Attempts, Receipt, Receipts
from order_processor.readmodel.redis import (
    REDIS_FAILURES,
    REDIS_TIMEOUTS,
    RedisClient,
    RedisPause,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# One failure more under a key, its lockout counted again from now (the key expires with
# it): the count and its expiry move together, never a count that outlives its window.
FAILED = """
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return count
"""


async def _shared(
    shared: Callable[[], Awaitable[T]], alone: Callable[[], Awaitable[T]], pause: RedisPause
) -> T:
    """`shared()`, else `alone()`: at once while Redis is paused after a timeout (the read
    model's pause: a hung Redis costs one timeout, not one per login or order)."""
    if pause.active():
        return await alone()
    try:
        return await shared()
    except REDIS_FAILURES as exc:
        if isinstance(exc, REDIS_TIMEOUTS):
            pause.begin()
        log.warning("Redis did not answer (%s): counting in this replica alone", exc)
        return await alone()


@dataclass(frozen=True)
class RedisAttempts:
    """`Attempts` in Redis: a counter per key that expires `lockout_seconds` after the
    last failure; locked while it is at `limit` or more."""

    redis: RedisClient
    prefix: str
    limit: int = 5
    lockout_seconds: float = 900.0
    fallback: Attempts = field(default_factory=MemoryAttempts)
    pause: RedisPause = field(default_factory=RedisPause)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:attempts:{key}"

    async def locked_for(self, key: str) -> float:
        async def shared() -> float:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(self._key(key))
                pipe.pttl(self._key(key))
                count, ttl = await pipe.execute()
            if count is None or int(count) < self.limit or int(ttl) < 0:
                return 0.0
            return max(int(ttl), 1) / 1000

        return await _shared(shared, lambda: self.fallback.locked_for(key), self.pause)

    async def failed(self, key: str) -> float:
        async def shared() -> float:
            window = max(1, int(self.lockout_seconds * 1000))
            count = await self.redis.eval(FAILED, 1, self._key(key), window)
            return self.lockout_seconds if int(count) >= self.limit else 0.0

        return await _shared(shared, lambda: self.fallback.failed(key), self.pause)

    async def cleared(self, key: str) -> None:
        async def shared() -> None:
            await self.redis.delete(self._key(key))

        await _shared(shared, lambda: self.fallback.cleared(key), self.pause)


@dataclass(frozen=True)
class RedisReceipts:
    """`Receipts` in Redis: the first request under a (user, key) kept `keep_seconds`
    with `SET NX GET` (one command: of two racing requests, one claims, the other is
    answered with the claim)."""

    redis: RedisClient
    prefix: str
    keep_seconds: float = 24 * 3600.0
    fallback: Receipts = field(default_factory=MemoryReceipts)
    pause: RedisPause = field(default_factory=RedisPause)

    def _key(self, username: str, key: str) -> str:
        return f"{self.prefix}:receipt:{username}:{key}"

    async def claim(self, username: str, key: str, receipt: Receipt) -> Receipt | None:
        async def shared() -> Receipt | None:
            kept: Any = await self.redis.set(
                self._key(username, key),
                _body(receipt),
                nx=True,
                px=self._keep_ms(receipt),
                get=True,
            )
            if kept is None:
                return None
            parsed = json.loads(kept)
            digest, answer = str(parsed["digest"]), str(parsed["answer"])
            return Receipt(digest, answer, sent=parsed.get("sent", True) is not False)

        return await _shared(
            shared, lambda: self.fallback.claim(username, key, receipt), self.pause
        )

    async def sent(self, username: str, key: str, receipt: Receipt) -> None:
        async def shared() -> None:
            await self.redis.set(
                self._key(username, key), _body(receipt), xx=True, px=self._keep_ms(receipt)
            )

        await _shared(shared, lambda: self.fallback.sent(username, key, receipt), self.pause)

    def _keep_ms(self, receipt: Receipt) -> int:
        seconds = self.keep_seconds if receipt.sent else min(self.keep_seconds, PENDING_SECONDS)
        return max(1, int(seconds * 1000))

    async def release(self, username: str, key: str) -> None:
        async def shared() -> None:
            await self.redis.delete(self._key(username, key))

        await _shared(shared, lambda: self.fallback.release(username, key), self.pause)


def _body(receipt: Receipt) -> str:
    return json.dumps({"digest": receipt.digest, "answer": receipt.answer, "sent": receipt.sent})
