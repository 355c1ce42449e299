"""The Redis read model runs the read model's contract (tests/contracts/read_model.py)
against a real redis-server, and again against a one-node Redis Cluster with the
cluster-mode client (as on ElastiCache Serverless), as the in-memory model does in
tests/unit/test_contracts.py; and what only Redis can show: its keys expire, it waits for
thousands of users at once, all its keys share one hash slot (where the old layout's
scripts and reads were refused CROSSSLOT)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from redis.asyncio import RedisCluster
from redis.crc import key_slot

from order_processor.bootstrap.cache import open_read_model, redis_client
from order_processor.config import Settings
from order_processor.deployment.redis_server import RedisServer
from order_processor.readmodel.ports import Document, ReadModel, ReadModelUnavailable
from order_processor.readmodel.redis import RedisClient, RedisPause, RedisReadModel
from tests.contracts.read_model import ReadModelContract, a_trader, deposit


class RedisReadModelWorld:
    def __init__(self, url: str, *, cluster: bool = False) -> None:
        self.cluster = cluster
        self.client = redis_client(url, cluster=cluster)
        self.server: RedisServer | None = None
        self.clients = [self.client]

    def model(
        self, *, ttl_seconds: float = 60, price_ttl_seconds: float = 2, stream_length: int = 1000
    ) -> ReadModel:
        return self._model_on(self.client, ttl_seconds, price_ttl_seconds, stream_length)

    def interruptible(self) -> ReadModel:
        self.server = RedisServer(cluster=self.cluster)
        self.server.start()
        client = redis_client(self.server.url, timeout=1.0, cluster=self.cluster)
        self.clients.append(client)
        return self._model_on(client, 60, 2, 1000)

    def stop(self) -> None:
        assert self.server is not None
        self.server.stop()

    def start(self) -> None:
        assert self.server is not None
        self.server.start()

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        if self.server is not None:
            self.server.remove()

    @staticmethod
    def _model_on(
        client: RedisClient, ttl_seconds: float, price_ttl_seconds: float, stream_length: int
    ) -> RedisReadModel:
        return RedisReadModel(
            client,
            prefix=f"t{uuid.uuid4().hex[:12]}",
            ttl_seconds=ttl_seconds,
            price_ttl_seconds=price_ttl_seconds,
            stream_length=stream_length,
            block_seconds=0.5,
        )


class TestRedisReadModel(ReadModelContract):
    @pytest.fixture
    async def world(self, redis_url: str) -> AsyncIterator[RedisReadModelWorld]:
        world = RedisReadModelWorld(redis_url)
        yield world
        await world.close()


class TestRedisClusterReadModel(ReadModelContract):
    @pytest.fixture
    async def world(self, redis_cluster_url: str) -> AsyncIterator[RedisReadModelWorld]:
        world = RedisReadModelWorld(redis_cluster_url, cluster=True)
        yield world
        await world.close()


@pytest.fixture(params=["node", "cluster"])
async def client(
    request: pytest.FixtureRequest, redis_url: str, redis_cluster_url: str
) -> AsyncIterator[RedisClient]:
    """A client of the single node, then of the one-node cluster (cluster mode)."""
    cluster = request.param == "cluster"
    opened = redis_client(redis_cluster_url if cluster else redis_url, cluster=cluster)
    yield opened
    await opened.aclose()


async def written_keys(client: RedisClient, model: RedisReadModel) -> list[bytes]:
    return [key async for key in client.scan_iter(match=f"{model.namespace}:*")]


async def test_every_key_a_model_writes_carries_the_ttl(client: RedisClient) -> None:
    model = RedisReadModel(client, prefix=f"t{uuid.uuid4().hex[:12]}", ttl_seconds=30)
    trader = a_trader()
    await model.apply(deposit(trader))
    generation = await model.generation(trader)
    await model.fill_document(trader, Document.BALANCES, "{}", generation)
    await model.fill_prices("{}")
    keys = await written_keys(client, model)
    assert len(keys) >= 5
    for key in keys:
        assert 0 < await client.pttl(key) <= 30_000


async def test_every_key_of_a_model_is_in_one_hash_slot_under_its_prefix_as_the_tag(
    client: RedisClient,
) -> None:
    model = RedisReadModel(client, prefix=f"t{uuid.uuid4().hex[:12]}:readmodel")
    traders = [a_trader(), a_trader()]
    for trader in traders:
        await model.apply(deposit(trader))
    await model.fill_prices("{}")
    keys = await written_keys(client, model)
    assert len(keys) >= 9
    assert all(key.startswith(f"{{{model.prefix}}}:".encode()) for key in keys)
    assert {key_slot(key) for key in keys} == {key_slot(model.prefix.encode())}


async def test_a_wait_follows_thousands_of_users_at_once(client: RedisClient) -> None:
    model = RedisReadModel(client, prefix=f"t{uuid.uuid4().hex[:12]}", block_seconds=0.5)
    users = [a_trader() for _ in range(2500)]
    event = deposit(users[-1])
    await model.apply(event)
    found = await model.wait_events(dict.fromkeys(users, "0-0"), 2)
    assert list(found) == [users[-1]]
    assert [streamed.event for streamed in found[users[-1]]] == [event]


async def test_the_programs_open_the_read_model_on_a_cluster_when_told_so(
    redis_cluster_url: str,
) -> None:
    settings = Settings(
        prefix=f"t{uuid.uuid4().hex[:12]}",
        redis_url=SecretStr(redis_cluster_url),
        redis_cluster=True,
    )
    trader = a_trader()
    async with open_read_model(settings) as model:
        assert isinstance(model.redis, RedisCluster)
        assert model.namespace == f"{{{settings.prefix}:readmodel}}"
        assert await model.apply(deposit(trader)) is True
        assert await model.generation(trader) == 1


async def test_more_calls_at_once_than_the_pool_holds_wait_for_a_connection(
    redis_url: str,
) -> None:
    """redis-py's default pool fails the 65th concurrent call ("Too many connections"),
    which the gateway would take for Redis away: the programs' pool makes it wait."""
    client = redis_client(redis_url)
    key = f"t{uuid.uuid4().hex[:12]}:empty"
    try:
        answers = await asyncio.gather(
            *(client.blpop([key], timeout=0.1) for _ in range(200)), return_exceptions=True
        )
    finally:
        await client.aclose()

    assert answers == [None] * 200


async def test_after_a_redis_that_hangs_times_out_a_call_the_next_ones_fail_at_once() -> None:
    """Each call to a Redis that neither answers nor refuses would wait out the timeout
    (the gateway's reads before DynamoDB): after one did, the model does not ask for its
    pause, then asks again."""
    server = RedisServer()
    server.start()
    client = redis_client(server.url, timeout=0.3)
    model = RedisReadModel(client, prefix=f"t{uuid.uuid4().hex[:12]}", pause=RedisPause(1.0))
    trader = a_trader()
    try:
        await model.apply(deposit(trader))
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(ReadModelUnavailable, match="in time"):
                await model.order("o1")
            started = time.monotonic()
            for call in (model.ping, lambda: model.generation(trader), model.prices):
                with pytest.raises(ReadModelUnavailable, match="not asked"):
                    await call()
            assert time.monotonic() - started < 0.1
        finally:
            server.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 5
        while True:  # the pause over, Redis is asked again
            try:
                assert await model.generation(trader) == 1
                break
            except ReadModelUnavailable:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
    finally:
        await client.aclose()
        server.remove()
