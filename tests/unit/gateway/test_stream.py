"""The event stream: from now, or resumed after Last-Event-ID with nothing lost or
repeated, a gap announced, caps per user and per address, the model away announced."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

import httpx
import structlog

from order_processor.domain.events import Event, EventType
from order_processor.gateway.limits import GatewayLimits
from order_processor.gateway.stream import Dispatcher
from order_processor.readmodel.memory import MemoryReadModel
from order_processor.readmodel.ports import StreamedEvent
from tests.unit.gateway.conftest import World, build_world
from tests.unit.gateway.sse import events_of, open_stream

FAST = GatewayLimits(stream_wait_seconds=0.05, heartbeat_seconds=0.2)


def an_event(number: int, username: str = "alice1") -> Event:
    return Event(
        event_id=f"event-{username}-{number}",
        event_type=EventType.BALANCE_DEPOSITED,
        username=username,
        data={"number": number},
    )


async def test_a_stream_starts_now_and_gets_each_new_event_of_its_user_only() -> None:
    world, client = build_world(FAST)
    await world.model.apply(an_event(1))
    async with client, open_stream(world.app, world.auth()) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert await stream.frames(1) == ["retry: 3000"]
        await world.model.apply(an_event(2, "bobby1"))
        await world.model.apply(an_event(3))
        [frame] = events_of(await stream.frames(1))

    assert frame["event"] == "balance.deposited"
    assert frame["id"] == "3-0"
    assert Event.model_validate_json(frame["data"]).event_id == "event-alice1-3"


async def test_a_stream_resumed_after_its_last_id_loses_and_repeats_nothing() -> None:
    world, client = build_world(FAST)
    for number in range(1, 6):
        await world.model.apply(an_event(number))
    async with client, open_stream(world.app, {**world.auth(), "Last-Event-ID": "2-0"}) as s:
        first = events_of(await s.frames(4))
        await world.model.apply(an_event(6))
        later = events_of(await s.frames(1))

    assert [f["id"] for f in first + later] == ["3-0", "4-0", "5-0", "6-0"]


async def test_a_resume_from_a_position_no_longer_kept_announces_a_gap_first() -> None:
    world, client = build_world(FAST)
    world.model.stream_length = 2
    for number in range(1, 5):
        await world.model.apply(an_event(number))
    async with client, open_stream(world.app, {**world.auth(), "Last-Event-ID": "1-0"}) as s:
        frames = events_of(await s.frames(4))

    assert [f["event"] for f in frames] == ["gap", "balance.deposited", "balance.deposited"]
    assert [f.get("id") for f in frames] == [None, "3-0", "4-0"]


async def test_an_unknown_last_event_id_is_a_gap_from_the_oldest_kept() -> None:
    world, client = build_world(FAST)
    await world.model.apply(an_event(1))
    async with client, open_stream(world.app, {**world.auth(), "Last-Event-ID": "bogus"}) as s:
        frames = events_of(await s.frames(3))

    assert [(f["event"], f.get("id")) for f in frames] == [
        ("gap", None),
        ("balance.deposited", "1-0"),
    ]


async def test_an_idle_stream_gets_heartbeats() -> None:
    world, client = build_world(FAST)
    async with client, open_stream(world.app, world.auth()) as stream:
        frames = await stream.frames(3)

    assert frames[1:] == [": keep-alive", ": keep-alive"]


async def test_open_streams_are_capped_per_user_and_per_address() -> None:
    world, client = build_world(
        GatewayLimits(streams_per_user=2, streams_per_address=3, stream_wait_seconds=0.05)
    )
    async with client, open_stream(world.app, world.auth()) as one:
        async with open_stream(world.app, world.auth()) as two:
            async with open_stream(world.app, world.auth()) as three:
                assert (one.status, two.status, three.status) == (200, 200, 429)
                assert three.headers["retry-after"] == "3"
            bob = world.auth("bobby1")
            async with open_stream(world.app, bob) as bobs, open_stream(world.app, bob) as over:
                assert (bobs.status, over.status) == (200, 429)
            async with open_stream(world.app, world.auth("bobby1"), "198.51.100.1") as away:
                assert away.status == 200
        async with open_stream(world.app, world.auth()) as again:
            assert again.status == 200


async def test_hundreds_of_streams_from_one_address_leave_the_gateway_answering() -> None:
    """In process, a few hundred (the 10,000 go against the real process: tests/e2e/
    test_gateway_end_to_end.py)."""
    world, client = build_world(
        GatewayLimits(
            streams_per_address=20,
            streams_per_user=1000,
            rate_per_address=1e9,
            burst_per_address=1e9,
            rate_per_user=1e9,
            burst_per_user=1e9,
            stream_wait_seconds=0.05,
        )
    )
    statuses: dict[int, int] = {}
    began = time.monotonic()
    async with client, contextlib.AsyncExitStack() as held:
        headers = world.auth()
        for _ in range(20):
            stream = await held.enter_async_context(open_stream(world.app, headers))
            assert stream.status == 200
        for _ in range(400):
            answer = await client.get("/v1/stream", headers=headers)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        other = await client.get("/v1/balances", headers=world.auth("bobby1"))
        elsewhere = await held.enter_async_context(
            open_stream(world.app, world.auth("bobby1"), "198.51.100.1")
        )

    assert statuses == {429: 400}
    assert other.status_code == elsewhere.status == 200
    assert time.monotonic() - began < 30


async def test_the_model_away_is_announced_and_the_stream_ends_for_a_retry() -> None:
    world, client = build_world(FAST)
    world.model.available = False
    async with client, open_stream(world.app, world.auth()) as stream:
        frames = await stream.rest()

    assert frames[0] == "retry: 3000"
    assert [f["event"] for f in events_of(frames)] == ["unavailable"]
    assert stream.ended


async def test_a_stream_open_when_the_model_goes_away_says_so_and_ends() -> None:
    world, client = build_world(FAST)
    async with client, open_stream(world.app, world.auth()) as stream:
        await stream.frames(1)
        world.model.available = False
        frames = await stream.rest()

    assert [f["event"] for f in events_of(frames)] == ["unavailable"]


async def test_stopping_ends_every_stream() -> None:
    world, client = build_world(FAST)
    async with client, open_stream(world.app, world.auth()) as stream:
        await stream.frames(1)
        await world.app.state.runtime.dispatcher.stop()
        await stream.rest()
        refused = await client.get("/v1/stream", headers=world.auth())

    assert stream.ended
    assert refused.status_code == 503


async def test_a_stream_needs_a_customer_token(world: World) -> None:
    answer = await world.client.get("/v1/stream")

    assert answer.status_code == 401
    assert isinstance(answer, httpx.Response)


class _Watched(MemoryReadModel):
    """Notes the log context each wait runs in."""

    contexts: list[dict[str, object]]

    async def wait_events(
        self, positions: Mapping[str, str], wait_seconds: float
    ) -> dict[str, list[StreamedEvent]]:
        self.contexts.append(structlog.contextvars.get_contextvars())
        return await super().wait_events(positions, min(wait_seconds, 0.01))


async def test_the_dispatcher_logs_under_no_request_of_a_users() -> None:
    """It serves every stream: the request that happened to start it (its id, its user)
    must not name its log lines (they would be read as that request's)."""
    model = _Watched()
    model.contexts = []
    dispatcher = Dispatcher(model, GatewayLimits())
    structlog.contextvars.bind_contextvars(request_id="first-request", username="bob_trader")
    try:
        dispatcher.join(dispatcher.reserve("bob_trader", "203.0.113.7"))
    finally:
        structlog.contextvars.unbind_contextvars("request_id", "username")
    deadline = time.monotonic() + 2
    while not model.contexts:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await dispatcher.stop()
    assert model.contexts[0] == {}
