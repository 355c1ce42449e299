"""Attacks on the gateway from outside: a hostile client (and a client's bad network)
against the app in process over its fakes. Each test names what must hold."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from order_processor.domain.commands import AnyCommand
from order_processor.domain.events import Event, EventType
from order_processor.gateway import stream as stream_module
from order_processor.gateway.app import create_app
from order_processor.gateway.limits import GatewayLimits
from order_processor.readmodel.memory import MemoryReadModel
from order_processor.readmodel.ports import StreamedEvent
from tests.unit.gateway.conftest import SECRET, build_world
from tests.unit.gateway.sse import events_of, open_stream

MARKET_BUY = {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "0.5"}
FAST = GatewayLimits(stream_wait_seconds=0.05, heartbeat_seconds=0.2, streams_per_user=2)


def an_event(number: int, username: str = "alice1") -> Event:
    return Event(
        event_id=f"event-{username}-{number}",
        event_type=EventType.BALANCE_DEPOSITED,
        username=username,
        data={"number": number},
    )


class CountingModel(MemoryReadModel):
    """The memory model, counting the dispatcher's waits."""

    waits: int = 0

    async def wait_events(
        self, positions: Mapping[str, str], wait_seconds: float
    ) -> dict[str, list[StreamedEvent]]:
        self.waits += 1
        return await super().wait_events(positions, wait_seconds)


async def _hang_up_at_once(app: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """A GET /v1/stream whose client is gone before the answer starts (uvicorn's ASGI
    2.3: the response listens for the disconnect)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/stream",
        "raw_path": b"/v1/stream",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("203.0.113.7", 5000),
        "server": ("gateway.test", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 2)
    return sent


async def test_streams_whose_clients_hang_up_at_once_do_not_use_up_the_users_streams() -> None:
    world, client = build_world(FAST)
    async with client:
        for _ in range(FAST.streams_per_user + 1):
            await _hang_up_at_once(world.app, world.auth())
        await asyncio.sleep(0.05)
        dispatcher = world.app.state.runtime.dispatcher

        assert dispatcher.open_streams() == 0
        assert dict(dispatcher.listeners) == {}
        async with open_stream(world.app, world.auth()) as stream:
            assert stream.status == 200


@pytest.mark.timeout(10)  # the spin starves the event loop: only the signal ends it
async def test_a_reader_that_never_reads_is_ended_and_does_not_keep_the_dispatcher_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream_module, "QUEUED_FRAMES", 5)
    model = CountingModel()
    dispatcher = stream_module.Dispatcher(model, FAST)
    slow = dispatcher.reserve("alice1", "203.0.113.7")
    dispatcher.join(slow)
    try:
        for number in range(1, 21):
            await model.apply(an_event(number))
        await asyncio.sleep(0.1)
        model.waits = 0
        await asyncio.sleep(0.5)
        # waiting 0.05 s a time with nothing new: about ten waits in half a second, not a
        # spin re-reading the slow reader's events (thousands)
        assert model.waits <= 20
        assert slow.frames.qsize() <= 5
    finally:
        await dispatcher.stop()


@dataclass
class SlowThenFailingSender:
    """SQS that takes its time over the first send and then fails it; later sends pass."""

    release_first: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0
    sent: list[AnyCommand] = field(default_factory=list)

    async def send(self, command: AnyCommand) -> str:
        self.calls += 1
        if self.calls == 1:
            await self.release_first.wait()
            raise ConnectionError("SQS timed out")
        self.sent.append(command)
        return command.command_id


async def test_a_retry_racing_a_send_that_fails_is_not_told_its_order_was_accepted() -> None:
    world, client = build_world()
    sender = SlowThenFailingSender()
    app = create_app(replace(world.gateway, commands=sender))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    headers = {**world.auth(), "Idempotency-Key": "client-timed-out-1"}
    async with client, httpx.AsyncClient(transport=transport, base_url="http://gw") as gw:
        first = asyncio.create_task(gw.post("/v1/orders", json=MARKET_BUY, headers=headers))
        await asyncio.sleep(0.05)  # the first is sending: the client gives up and retries
        racing = await gw.post("/v1/orders", json=MARKET_BUY, headers=headers)
        sender.release_first.set()
        failed = await first
        later = await gw.post("/v1/orders", json=MARKET_BUY, headers=headers)
        found = await gw.get(later.headers["location"], headers=world.auth())

    assert (failed.status_code, racing.status_code) == (503, 503)
    assert racing.headers["retry-after"] == "1"
    assert "still being sent" in racing.json()["detail"]
    # the later retry's 202 is true: its command was sent, and its order is found
    assert later.status_code == 202
    assert [c.command_id for c in sender.sent] == ["client-timed-out-1"]
    assert found.status_code == 200


async def test_a_body_naming_a_field_twice_is_refused_not_read_as_its_last_value() -> None:
    world, client = build_world()
    body = '{"order_type": "MARKET_BUY", "asset_id": "BTC", "asset_id": "ETH", "quantity": "1"}'
    headers = {
        **world.auth(),
        "Idempotency-Key": "twice-1",
        "Content-Type": "application/json",
    }
    async with client:
        answer = await client.post("/v1/orders", content=body, headers=headers)

    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert "asset_id" in answer.json()["detail"]
    assert world.sender.sent == []


async def test_a_last_event_id_never_issued_past_the_tail_is_a_gap_and_the_stream_lives() -> None:
    world, client = build_world(FAST)
    await world.model.apply(an_event(1))
    headers = {**world.auth(), "Last-Event-ID": "999999-0"}
    async with client, open_stream(world.app, headers) as stream:
        first = events_of(await stream.frames(3))
        await world.model.apply(an_event(2))
        later = events_of(await stream.frames(1))

    assert [(f["event"], f.get("id")) for f in first] == [
        ("gap", None),
        ("balance.deposited", "1-0"),
    ]
    assert [f["id"] for f in later] == ["2-0"]


def a_client_at(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


async def test_the_addresses_of_one_ipv6_network_share_its_limits() -> None:
    """An IPv6 client holds a /64 (2**64 addresses): each of them a fresh address would
    dodge the per-address rate, lockout and stream caps at will."""
    world, client = build_world(
        GatewayLimits(rate_per_address=1, burst_per_address=2), address="2001:db8:1:2::1"
    )
    answers = []
    async with client:
        for host in range(1, 4):
            async with a_client_at(world.app, f"2001:db8:1:2::{host:x}") as each:
                answers.append(await each.get("/v1/prices", headers=world.auth()))
        async with a_client_at(world.app, "2001:db8:1:3::1") as another_network:
            answers.append(await another_network.get("/v1/prices", headers=world.auth()))

    assert [a.status_code for a in answers] == [200, 200, 429, 200]


def _segment(document: dict[str, Any]) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _signed(header: dict[str, Any], claims: dict[str, Any], key: bytes, digest: Any) -> str:
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    mac = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


async def test_tokens_a_hostile_client_crafts_are_refused_as_a_401_problem() -> None:
    world, client = build_world()
    now = int(time.time())
    claims = {"sub": "alice1", "role": "customer", "iat": now, "exp": now + 600}
    secret = SECRET.encode()
    crafted = {
        "alg none": f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}.",
        "HS512 under the secret": _signed({"alg": "HS512"}, claims, secret, hashlib.sha512),
        "RS256 claimed, HMAC-signed": _signed({"alg": "RS256"}, claims, secret, hashlib.sha256),
        "under another secret": _signed({"alg": "HS256"}, claims, b"x" * 32, hashlib.sha256),
        "a command's token": world.tokens.create_access_token("alice1", command="a" * 64),
        "oversized": world.token() + "A" * 100_000,
        "crit header": _signed({"alg": "HS256", "crit": ["exp"]}, claims, secret, hashlib.sha256),
        "life beyond the maximum": _signed(
            {"alg": "HS256"}, {**claims, "exp": now + 10**6}, secret, hashlib.sha256
        ),
    }
    async with client:
        answers = {
            name: await client.get("/v1/balances", headers={"Authorization": f"Bearer {token}"})
            for name, token in crafted.items()
        }
        in_a_cookie = await client.get(
            "/v1/balances", headers={"Cookie": f"access_token={world.token()}"}
        )

    for name, answer in answers.items():
        assert (name, answer.status_code) == (name, 401)
        assert answer.headers["content-type"] == "application/problem+json"
    assert in_a_cookie.status_code == 401
    assert world.sender.sent == []


async def test_another_users_positions_resume_only_the_users_own_events() -> None:
    world, client = build_world(FAST)
    for number in range(1, 4):
        await world.model.apply(an_event(number, "bobby1"))
    await world.model.apply(an_event(9, "alice1"))
    headers = {**world.auth(), "Last-Event-ID": "0-0"}  # from the start: of whose stream?
    async with client, open_stream(world.app, headers) as stream:
        frames = events_of(await stream.frames(2))
        await world.model.apply(an_event(4, "bobby1"))
        await world.model.apply(an_event(10, "alice1"))
        frames += events_of(await stream.frames(1))

    bodies = [Event.model_validate_json(f["data"]) for f in frames if f["event"] != "gap"]
    assert [b.event_id for b in bodies] == ["event-alice1-9", "event-alice1-10"]


class HeldTailModel(MemoryReadModel):
    """The memory model whose `tail` answers only once let go."""

    held: asyncio.Event

    async def tail(self, username: str) -> str:
        await self.held.wait()
        return await super().tail(username)


async def test_a_stream_opening_while_the_gateway_stops_ends_with_the_others() -> None:
    model = HeldTailModel()
    model.held = asyncio.Event()
    world, client = build_world(FAST)
    app = create_app(replace(world.gateway, read_model=model))
    dispatcher = app.state.runtime.dispatcher
    async with client:
        opening = asyncio.create_task(_open_and_read(app, world.auth()))
        await asyncio.sleep(0.05)  # reserved, waiting on the model: now SIGTERM
        await dispatcher.stop()
        model.held.set()
        frames = await asyncio.wait_for(opening, 2)

    assert frames == ["retry: 3000"]  # and then the stream ended


async def _open_and_read(app: Any, headers: dict[str, str]) -> list[str]:
    async with open_stream(app, headers) as stream:
        return await stream.rest(wait=1.0)


async def test_a_burst_of_logins_from_one_address_does_not_run_a_password_check_each() -> None:
    """bcrypt is the costly part of a login: a burst from one address, all in before the
    first failure is counted, would have every one of them checked."""
    world, client = build_world()
    checking = 0
    most = 0
    let_go = asyncio.Event()

    async def slow_check(username: str, password: str) -> None:
        nonlocal checking, most
        checking += 1
        most = max(most, checking)
        await let_go.wait()
        checking -= 1

    world.reads.authenticate = slow_check  # type: ignore[method-assign]
    body = {"username": "alice1", "password": "wrong-password"}
    async with client:
        burst = [asyncio.create_task(client.post("/v1/sessions", json=body)) for _ in range(30)]
        await asyncio.sleep(0.2)
        let_go.set()
        answers = [await each for each in burst]

    assert most <= 2
    assert {a.status_code for a in answers} <= {401, 429}
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
