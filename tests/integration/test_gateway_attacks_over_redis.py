"""Attacks through the read model (a real Redis): entries the gateway cannot read (a
hostile or older writer: another version mid-rollout), and an event on the cache queue
that names another user's order. The user still gets their own order, never a 500."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace

import httpx
import pytest
from fastapi import FastAPI

from order_processor.bootstrap.cache import redis_client
from order_processor.bootstrap.gateway import read_model_of
from order_processor.config import Settings
from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import Order, OrderCreate, OrderStatus
from order_processor.gateway.app import create_app
from order_processor.gateway.deps import Gateway
from order_processor.gateway.limits import GatewayLimits
from order_processor.gateway.memory import RecordingSender
from order_processor.gateway.stream import Dispatcher
from order_processor.readmodel.ports import StreamedEvent
from order_processor.readmodel.redis import RedisReadModel
from order_processor.security.tokens import TokenManager
from tests.unit.gateway.conftest import SECRET, World, build_world
from tests.unit.gateway.sse import events_of, open_stream


@dataclass
class Served:
    world: World
    app: FastAPI
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
        yield Served(world, app, client, model, order)
    await app.state.runtime.dispatcher.stop()
    await redis.aclose()


async def test_an_order_entry_the_gateway_cannot_read_answers_the_stored_order(
    served: Served,
) -> None:
    key = f"{served.model.namespace}:order:{served.order.order_id}"
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


async def test_an_unreadable_event_in_a_users_stream_is_skipped_not_a_500(
    served: Served,
) -> None:
    stream_key = f"{served.model.namespace}:user:alice1:events"
    await served.model.redis.xadd(stream_key, {"event": "{not an event"})
    await served.model.apply(
        Event(
            event_id="deposit-1",
            event_type=EventType.BALANCE_DEPOSITED,
            username="alice1",
            data={"amount": "10.00", "currency": "USD"},
        )
    )
    async with open_stream(served.app, {**served.world.auth(), "Last-Event-ID": "0-0"}) as stream:
        status = stream.status
        frames = events_of(await stream.frames(2))

    assert status == 200
    assert [Event.model_validate_json(f["data"]).event_id for f in frames] == ["deposit-1"]


@dataclass(frozen=True)
class CountingRedisModel(RedisReadModel):
    waits: list[float] = field(default_factory=list)

    async def wait_events(
        self, positions: Mapping[str, str], wait_seconds: float
    ) -> dict[str, list[StreamedEvent]]:
        self.waits.append(wait_seconds)
        return await super().wait_events(positions, wait_seconds)


async def test_an_unreadable_event_arriving_on_a_live_stream_does_not_spin_the_dispatcher(
    served: Served,
) -> None:
    model = CountingRedisModel(served.model.redis, prefix=served.model.prefix, block_seconds=0.05)
    limits = GatewayLimits(stream_wait_seconds=0.1)
    dispatcher = Dispatcher(model, limits)
    listener = dispatcher.reserve("alice1", "203.0.113.7")
    dispatcher.join(listener)
    try:
        await model.redis.xadd(f"{model.namespace}:user:alice1:events", {"event": "{not an event"})
        await asyncio.sleep(0.1)
        model.waits.clear()
        await asyncio.sleep(0.5)
        waits = len(model.waits)
        await model.apply(
            Event(
                event_id="deposit-2",
                event_type=EventType.BALANCE_DEPOSITED,
                username="alice1",
                data={"amount": "10.00", "currency": "USD"},
            )
        )
        frame = await asyncio.wait_for(listener.frames.get(), 2)
    finally:
        await dispatcher.stop()

    assert waits <= 10  # one wait per 0.1 s, not a loop re-reading the entry
    assert frame is not None
    assert "deposit-2" in frame


@pytest.mark.parametrize(
    "last_event_id",
    [
        "99999999999999999999-0",
        "18446744073709551615-18446744073709551615",
        "0-99999999999999999999",
    ],
)
async def test_a_last_event_id_redis_cannot_take_is_a_gap_not_unavailable(
    served: Served, last_event_id: str
) -> None:
    await served.model.apply(
        Event(
            event_id="deposit-3",
            event_type=EventType.BALANCE_DEPOSITED,
            username="alice1",
            data={"amount": "10.00", "currency": "USD"},
        )
    )
    headers = {**served.world.auth(), "Last-Event-ID": last_event_id}
    async with open_stream(served.app, headers) as stream:
        frames = events_of(await stream.frames(3))

    assert [f["event"] for f in frames] == ["gap", "balance.deposited"]


async def test_a_redis_that_never_answers_costs_one_request_its_timeouts_not_every_one() -> None:
    """After a call Redis let time out, Redis is not asked again for a pause: the next
    requests go to DynamoDB at once (counted by what reaches the silent server, not timed)."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", prefix="blackholed")
    world, _ = build_world()
    async with server, read_model_of(settings) as model:
        app = create_app(replace(world.gateway, read_model=model))
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            answers = [await client.get("/v1/balances", headers=world.auth(), timeout=30)]
            reached_by_the_first = len(held)
            for _ in range(5):
                answers.append(await client.get("/v1/balances", headers=world.auth(), timeout=30))
        await app.state.runtime.dispatcher.stop()
        for writer in held:
            writer.close()

    assert [a.status_code for a in answers] == [200] * 6
    assert answers[-1].json() == answers[0].json()
    assert reached_by_the_first >= 1  # the first asked Redis and waited out its timeout
    assert len(held) == reached_by_the_first  # the next five never asked it
