"""The gateway over the real read model (Redis): a placed order found at once, then its
latest state; the stream through Redis positions, resumed after a reconnect without loss
or repeat; and a Redis that does not answer: the same answers from the fallback, the
stream saying it is unavailable."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from order_processor.bootstrap.cache import redis_client
from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import Order
from order_processor.gateway.app import create_app
from order_processor.gateway.deps import Gateway
from order_processor.gateway.limits import GatewayLimits
from order_processor.gateway.memory import RecordingSender
from order_processor.gateway.shared import RedisReceipts
from order_processor.readmodel.redis import RedisReadModel
from order_processor.security.tokens import TokenManager
from tests.unit.gateway.conftest import SECRET, build_world
from tests.unit.gateway.sse import events_of, open_stream

MARKET_BUY = {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "0.5"}


@dataclass
class Served:
    app: FastAPI
    client: httpx.AsyncClient
    model: RedisReadModel
    auth: dict[str, str]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    url = (
        request.getfixturevalue("redis_url")
        if request.param
        else (f"redis://127.0.0.1:{closed_port()}/0")
    )
    redis = redis_client(url, timeout=0.5)
    model = RedisReadModel(redis, prefix=f"t{uuid.uuid4().hex[:12]}", block_seconds=0.2)
    world, _ = build_world()  # its fakes: the users, their cash, the "DynamoDB" reads
    gateway = Gateway(
        reads=world.reads,
        commands=RecordingSender(),
        read_model=model,
        tokens=TokenManager(SECRET),
        secret=b"order-ids-and-cursors-secret-32b",
        limits=GatewayLimits(stream_wait_seconds=0.2),
    )
    app = create_app(gateway)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield Served(app, client, model, world.auth())
    await app.state.runtime.dispatcher.stop()
    await redis.aclose()


def completed(order: dict[str, object], sequence: int) -> Event:
    done = Order.model_validate(order).evolve(status="COMPLETED", sequence=sequence)
    return Event(
        event_id=f"{done.order_id}:{sequence}",
        event_type=EventType.ORDER_COMPLETED,
        username=done.username,
        order_id=done.order_id,
        sequence=sequence,
        data=done.response_json(),
    )


@pytest.mark.parametrize("served", [True], indirect=True, ids=["redis"])
async def test_an_order_is_found_at_once_then_followed_on_the_stream(served: Served) -> None:
    headers = {**served.auth, "Idempotency-Key": "redis-order-1"}
    order = (await served.client.post("/v1/orders", json=MARKET_BUY, headers=headers)).json()
    url = f"/v1/orders/{order['order_id']}"
    found = await served.client.get(url, headers=served.auth)

    async with open_stream(served.app, served.auth) as stream:
        await stream.frames(1)  # retry:
        await served.model.apply(completed(order, 2))
        [first] = events_of(await stream.frames(1))
    await served.model.apply(completed(order, 3))
    resumed_from = {**served.auth, "Last-Event-ID": first["id"]}
    async with open_stream(served.app, resumed_from) as again:
        resumed = events_of(await again.frames(2))
    latest = await served.client.get(url, headers=served.auth)

    assert found.json()["status"] == "PENDING"
    assert [f["event"] for f in resumed] == ["order.completed"]
    assert Event.model_validate_json(resumed[0]["data"]).sequence == 3
    assert resumed[0]["id"] > first["id"]
    assert latest.json()["sequence"] == 3


@pytest.mark.parametrize("served", [False], indirect=True, ids=["redis-away"])
async def test_redis_not_answering_changes_no_answer_and_the_stream_says_so(
    served: Served,
) -> None:
    headers = {**served.auth, "Idempotency-Key": "away-order-1"}
    placed = await served.client.post("/v1/orders", json=MARKET_BUY, headers=headers)
    balances = await served.client.get("/v1/balances", headers=served.auth)
    async with open_stream(served.app, served.auth) as stream:
        frames = await stream.rest()

    assert placed.status_code == 202
    assert balances.json()["balances"][1] == {
        "currency": "USD",
        "available": "1000.00",
        "held": "0.00",
    }
    assert [f["event"] for f in events_of(frames)] == ["unavailable"]


async def test_two_replicas_answer_a_retry_as_one_and_refuse_another_body(
    redis_url: str,
) -> None:
    """Receipts in Redis: a retry that reaches the other replica sends nothing new and gets
    the same answer; another body under the key is 409 there too."""
    redis = redis_client(redis_url)
    prefix = f"t{uuid.uuid4().hex[:12]}"
    world, _ = build_world()
    sender = RecordingSender()
    replicas = []
    for _ in range(2):
        gateway = Gateway(
            reads=world.reads,
            commands=sender,
            read_model=RedisReadModel(redis, prefix=prefix),
            tokens=TokenManager(SECRET),
            secret=b"order-ids-and-cursors-secret-32b",
            receipts=RedisReceipts(redis, prefix),
        )
        transport = httpx.ASGITransport(app=create_app(gateway), client=("203.0.113.7", 1))
        replicas.append(httpx.AsyncClient(transport=transport, base_url="http://gateway.test"))
    headers = {**world.auth(), "Idempotency-Key": "across-replicas-1"}
    try:
        first = await replicas[0].post("/v1/orders", json=MARKET_BUY, headers=headers)
        retry = await replicas[1].post("/v1/orders", json=MARKET_BUY, headers=headers)
        other = await replicas[1].post(
            "/v1/orders", json={**MARKET_BUY, "quantity": "0.6"}, headers=headers
        )
    finally:
        for client in replicas:
            await client.aclose()
        await redis.aclose()

    assert (first.status_code, retry.status_code, other.status_code) == (202, 202, 409)
    assert retry.json() == first.json()
    assert len(sender.sent) == 1


async def test_without_events_a_cached_order_is_read_anew_once_its_ttl_has_passed(
    redis_url: str,
) -> None:
    """The staleness bound with the cache worker away: an entry lives at most the TTL
    after its last write, then the read goes to DynamoDB and gets the state there."""
    redis = redis_client(redis_url)
    world, _ = build_world()
    ttl = 0.5
    model = RedisReadModel(redis, prefix=f"t{uuid.uuid4().hex[:12]}", ttl_seconds=ttl)
    gateway = Gateway(
        reads=world.reads,
        commands=RecordingSender(),
        read_model=model,
        tokens=TokenManager(SECRET),
        secret=b"order-ids-and-cursors-secret-32b",
    )
    transport = httpx.ASGITransport(app=create_app(gateway), client=("203.0.113.7", 1))
    headers = {**world.auth(), "Idempotency-Key": "ttl-bound-1"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        placed = (await client.post("/v1/orders", json=MARKET_BUY, headers=headers)).json()
        url = f"/v1/orders/{placed['order_id']}"
        done = Order.model_validate(placed).evolve(status="COMPLETED", sequence=3)
        world.reads.order_book[done.order_id] = done  # DynamoDB moved; no event came
        cached = (await client.get(url, headers=world.auth())).json()
        kept_for = await redis.pttl(f"{model.namespace}:order:{done.order_id}")
        statuses = [cached["status"]]
        deadline = time.monotonic() + ttl + 5
        while statuses[-1] != "COMPLETED" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            statuses.append((await client.get(url, headers=world.auth())).json()["status"])
    await redis.aclose()

    assert cached["status"] == "PENDING"
    assert 0 < kept_for <= ttl * 1000
    assert statuses[-1] == "COMPLETED"
