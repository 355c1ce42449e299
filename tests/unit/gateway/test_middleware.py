"""What every request goes through: request ids, problems for every error, body limits,
content types, rate limits, an access line per request with no token in it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from order_processor.gateway.limits import GatewayLimits
from order_processor.observability.logs import configure_json_logs
from tests.unit.gateway.conftest import World, build_world

MARKET_BUY = {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "0.5"}
PROBLEM = "application/problem+json"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_json_logs(stream=stream)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


async def test_every_answer_carries_a_request_id_and_a_sane_one_is_kept(world: World) -> None:
    kept = await world.client.get("/v1/balances", headers={"X-Request-ID": "client-req-0001"})
    minted = await world.client.get("/v1/balances", headers={"X-Request-ID": "bad id\x7f!"})

    assert kept.headers["x-request-id"] == "client-req-0001"
    assert kept.json()["request_id"] == "client-req-0001"
    assert len(minted.headers["x-request-id"]) == 32


async def test_unknown_routes_and_methods_are_problems(world: World) -> None:
    missing = await world.client.get("/v1/nothing")
    method = await world.client.put("/v1/balances", headers=world.auth())

    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM)
    assert (method.status_code, method.headers["content-type"]) == (405, PROBLEM)
    assert missing.json()["type"].endswith("/not-found")


async def test_an_oversized_body_is_refused_whether_declared_or_chunked(world: World) -> None:
    big = json.dumps({**MARKET_BUY, "asset_id": "B" * 20_000}).encode()
    headers = {**world.auth(), "Idempotency-Key": "big-1", "Content-Type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    declared = await world.client.post("/v1/orders", content=big, headers=headers)
    chunked = await world.client.post("/v1/orders", content=chunks(), headers=headers)
    lying = await world.client.post(
        "/v1/orders", content=big, headers={**headers, "Content-Length": "10"}
    )

    for answer in (declared, chunked):
        assert (answer.status_code, answer.headers["content-type"]) == (413, PROBLEM)
    assert lying.status_code in (400, 413)
    assert world.sender.sent == []


async def test_a_body_that_is_not_json_is_unsupported(world: World) -> None:
    headers = {**world.auth(), "Idempotency-Key": "form-1"}
    form = await world.client.post("/v1/orders", data={"order_type": "MARKET_BUY"}, headers=headers)
    text = await world.client.post(
        "/v1/orders", content=b"{}", headers={**headers, "Content-Type": "text/plain"}
    )

    assert form.status_code == text.status_code == 415
    assert world.sender.sent == []


async def test_malformed_json_names_the_body(world: World) -> None:
    answer = await world.client.post(
        "/v1/orders",
        content=b"{not json",
        headers={**world.auth(), "Idempotency-Key": "bad-1", "Content-Type": "application/json"},
    )

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"].startswith("body")


async def test_a_user_over_their_rate_waits_and_another_user_does_not() -> None:
    world, client = build_world(GatewayLimits(rate_per_user=1, burst_per_user=3))
    async with client:
        answers = [await client.get("/v1/balances", headers=world.auth()) for _ in range(4)]
        other = await client.get("/v1/balances", headers=world.auth("bobby1"))

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].headers["retry-after"] == "1"
    assert other.status_code == 200


async def test_an_address_over_its_rate_is_refused_before_anything_else() -> None:
    world, client = build_world(GatewayLimits(rate_per_address=1, burst_per_address=2))
    async with client:
        answers = [await client.get("/v1/prices", headers=world.auth()) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]


async def test_an_unexpected_error_answers_500_with_the_request_id_alone(
    world: World, log_lines: io.StringIO
) -> None:
    async def broken(username: str) -> list[object]:
        raise RuntimeError("secret internals")

    world.reads.balances = broken  # type: ignore[method-assign,assignment]
    answer = await world.client.get(
        "/v1/balances", headers={**world.auth(), "X-Request-ID": "req-broken-1"}
    )

    assert answer.status_code == 500
    assert answer.json() == {
        "type": "https://order-processor.dev/problems/internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "see the gateway's log",
        "instance": "/v1/balances",
        "request_id": "req-broken-1",
    }
    assert "secret internals" not in answer.text
    [failure] = [
        json.loads(line) for line in log_lines.getvalue().splitlines() if "secret internals" in line
    ]
    assert (failure["event"], failure["request_id"]) == (
        "request failed unexpectedly",
        "req-broken-1",
    )


async def test_the_access_line_names_the_route_and_the_user_and_never_the_token(
    world: World, log_lines: io.StringIO
) -> None:
    order = await world.client.post(
        "/v1/orders", json=MARKET_BUY, headers={**world.auth(), "Idempotency-Key": "log-1"}
    )
    await world.client.get(order.headers["location"], headers=world.auth())

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    access = [
        line
        for line in lines
        if line.get("logger") == "order_processor.gateway.access" or line.get("event") == "request"
    ]
    assert [(a["method"], a["route"], a["status"], a["user"]) for a in access] == [
        ("POST", "/v1/orders", 202, "alice1"),
        ("GET", "/v1/orders/{order_id}", 200, "alice1"),
    ]
    assert all(a["address"] == "203.0.113.7" and a["duration_ms"] >= 0 for a in access)
    assert world.token() not in log_lines.getvalue()
