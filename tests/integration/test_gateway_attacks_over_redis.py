"""Attacks through the read model (a real Redis): entries the gateway cannot read (a
hostile or older writer: another version mid-rollout), and an event on the cache queue
that names another user's order. The user still gets their own order, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from order_processor.bootstrap.cache import redis_client
from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import Order, OrderCreate, OrderStatus
from order_processor.gateway.app import create_app
from order_processor.gateway.deps import Gateway
from order_processor.gateway.limits import GatewayLimits
from order_processor.gateway.memory import RecordingSender
from order_processor.readmodel.redis import RedisReadModel
from order_processor.security.tokens import TokenManager
from tests.unit.gateway.conftest import SECRET, World, build_world


@dataclass
class Served:
    world: World
    client: httpx.AsyncClient
    model: RedisReadModel
    order: Order  # alice1's, in "DynamoDB"


@pytest.fixture
async def served(redis_url: str) -> AsyncIterator[Served]:
    redis = redis_client(redis_url, timeout=0.5)
    model = RedisReadModel(redis, prefix=f"t{uuid.uuid4().hex[:12]}", block_seconds=0.2)
    world, _ = build_world()
    request = OrderCreate.model_validate(
        {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "1"}
    )
    order = Order.place("alice1", request, "alice1-order-1").evolve(
        status=OrderStatus.COMPLETED, sequence=2
    )
    world.reads.order_book[order.order_id] = order
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
        yield Served(world, client, model, order)
    await app.state.runtime.dispatcher.stop()
    await redis.aclose()


async def test_an_order_entry_the_gateway_cannot_read_answers_the_stored_order(
    served: Served,
) -> None:
    key = f"{served.model.prefix}:order:{served.order.order_id}"
    await served.model.redis.hset(
        key, mapping={"sequence": "9", "username": "alice1", "body": "{not an order"}
    )
    answer = await served.client.get(
        f"/v1/orders/{served.order.order_id}", headers=served.world.auth()
    )

    assert answer.status_code == 200
    assert answer.json()["status"] == "COMPLETED"


async def test_an_event_naming_another_users_order_does_not_hide_it_from_its_owner(
    served: Served,
) -> None:
    """Before the owner's entry exists (once it does, the model keeps its owner: the
    read model's contract), an entry under another user's name must not answer for her."""
    forged = served.order.evolve(username="bobby1", sequence=50, status=OrderStatus.CANCELLED)
    await served.model.apply(
        Event(
            event_id="forged-1",
            event_type=EventType.ORDER_CANCELLED,
            username="bobby1",
            order_id=forged.order_id,
            sequence=50,
            data=forged.model_dump(mode="json"),
        )
    )
    mine = await served.client.get(
        f"/v1/orders/{served.order.order_id}", headers=served.world.auth()
    )

    assert mine.status_code == 200
    assert mine.json()["status"] == "COMPLETED"
