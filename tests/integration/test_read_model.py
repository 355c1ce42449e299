"""The Redis read model runs the read model's contract (tests/contracts/read_model.py)
against a real redis-server, as the in-memory model does in tests/unit/test_contracts.py;
and what only Redis can show: its keys expire, it waits for thousands of users at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from order_processor.bootstrap.cache import redis_client
from order_processor.deployment.redis_server import RedisServer
from order_processor.readmodel.ports import Document, ReadModel
from order_processor.readmodel.redis import RedisReadModel
from tests.contracts.read_model import ReadModelContract, a_trader, deposit


class RedisReadModelWorld:
    def __init__(self, url: str) -> None:
        self.client = redis_client(url)
        self.server: RedisServer | None = None
        self.clients = [self.client]

    def model(
        self, *, ttl_seconds: float = 60, price_ttl_seconds: float = 2, stream_length: int = 1000
    ) -> ReadModel:
        return self._model_on(self.client, ttl_seconds, price_ttl_seconds, stream_length)

    def interruptible(self) -> ReadModel:
        self.server = RedisServer()
        self.server.start()
        client = redis_client(self.server.url, timeout=1.0)
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
        client: Redis, ttl_seconds: float, price_ttl_seconds: float, stream_length: int
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


async def test_every_key_a_model_writes_carries_the_ttl(redis_url: str) -> None:
    client = redis_client(redis_url)
    try:
        model = RedisReadModel(client, prefix=f"t{uuid.uuid4().hex[:12]}", ttl_seconds=30)
        trader = a_trader()
        await model.apply(deposit(trader))
        generation = await model.generation(trader)
        await model.fill_document(trader, Document.BALANCES, "{}", generation)
        await model.fill_prices("{}")
        keys = [key async for key in client.scan_iter(match=f"{model.prefix}:*")]
        assert len(keys) >= 5
        for key in keys:
            assert 0 < await client.pttl(key) <= 30_000
    finally:
        await client.aclose()


async def test_a_wait_follows_thousands_of_users_at_once(redis_url: str) -> None:
    client = redis_client(redis_url)
    try:
        model = RedisReadModel(client, prefix=f"t{uuid.uuid4().hex[:12]}", block_seconds=0.5)
        users = [a_trader() for _ in range(2500)]
        event = deposit(users[-1])
        await model.apply(event)
        found = await model.wait_events(dict.fromkeys(users, "0-0"), 2)
        assert list(found) == [users[-1]]
        assert [streamed.event for streamed in found[users[-1]]] == [event]
    finally:
        await client.aclose()
