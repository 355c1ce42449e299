"""The gateway's counters in Redis hold the contracts the in-memory ones hold (against a
real redis-server, and on a one-node cluster with the cluster client), and fall back to
those when Redis is away."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator

import pytest

from order_processor.bootstrap.cache import redis_client
from order_processor.deployment.emulator import free_port
from order_processor.deployment.redis_server import RedisServer
from order_processor.domain.base import new_id
from order_processor.gateway.memory import MemoryAttempts
from order_processor.gateway.ports import Attempts, Receipt, Receipts
from order_processor.gateway.shared import RedisAttempts, RedisReceipts
from order_processor.readmodel.redis import RedisClient, RedisPause
from tests.contracts.counters import (
    KEEP,
    LIMIT,
    LOCKOUT,
    AttemptsContract,
    ReceiptsContract,
)


@pytest.fixture(params=["node", "cluster"])
async def redis(
    request: pytest.FixtureRequest, redis_url: str, redis_cluster_url: str
) -> AsyncIterator[RedisClient]:
    cluster = request.param == "cluster"
    client = redis_client(redis_cluster_url if cluster else redis_url, cluster=cluster)
    yield client
    await client.aclose()


class TestRedisAttempts(AttemptsContract):
    @pytest.fixture
    def attempts(self, redis: RedisClient) -> Attempts:
        return RedisAttempts(redis, f"t{new_id()}", limit=LIMIT, lockout_seconds=LOCKOUT)


class TestRedisReceipts(ReceiptsContract):
    @pytest.fixture
    def receipts(self, redis: RedisClient) -> Receipts:
        return RedisReceipts(redis, f"t{new_id()}", keep_seconds=KEEP)


async def test_two_replicas_share_one_lockout(redis: RedisClient) -> None:
    prefix = f"t{new_id()}"
    replicas = [RedisAttempts(redis, prefix, limit=2, lockout_seconds=60) for _ in range(2)]

    await replicas[0].failed("user:alice")
    await replicas[1].failed("user:alice")

    assert await replicas[0].locked_for("user:alice") > 59
    assert await replicas[1].locked_for("user:alice") > 59


async def test_redis_away_counts_in_the_replica_alone() -> None:
    away = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    alone = MemoryAttempts(limit=2, lockout_seconds=60)
    attempts = RedisAttempts(away, "t", limit=2, lockout_seconds=60, fallback=alone)
    receipts = RedisReceipts(away, "t")
    try:
        await attempts.failed("user:alice")
        locked = await attempts.failed("user:alice")
        first = await receipts.claim("alice", "k", Receipt("d1", "{}"))
        second = await receipts.claim("alice", "k", Receipt("d2", "{}"))
    finally:
        await away.aclose()

    assert 59 < locked <= 60
    assert await alone.locked_for("user:alice") > 59
    assert (first, second) == (None, Receipt("d1", "{}"))


async def test_after_a_redis_that_hangs_times_out_the_counters_count_alone_at_once() -> None:
    """The read model's pause, shared: once a call timed out, neither a login's counter
    nor a receipt asks the hung Redis again (each would wait out the timeout)."""
    server = RedisServer()
    server.start()
    hung = redis_client(server.url, timeout=0.3)
    pause = RedisPause(60)
    alone = MemoryAttempts(limit=2, lockout_seconds=60)
    attempts = RedisAttempts(hung, "t", limit=2, lockout_seconds=60, fallback=alone, pause=pause)
    receipts = RedisReceipts(hung, "t", pause=pause)
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        first = await receipts.claim("alice", "k", Receipt("d1", "{}"))  # waits it out
        started = time.monotonic()
        second = await receipts.claim("alice", "k", Receipt("d2", "{}"))
        await attempts.failed("user:alice")
        locked = await attempts.failed("user:alice")
        took = time.monotonic() - started
    finally:
        server.process.send_signal(signal.SIGCONT)
        await hung.aclose()
        server.remove()

    assert (first, second) == (None, Receipt("d1", "{}"))
    assert 59 < locked <= 60
    assert took < 0.1
