"""Logging in, locking out without telling who exists, and the tokens the API takes."""

from __future__ import annotations

import json
from datetime import timedelta

from order_processor.gateway.limits import GatewayLimits
from tests.unit.gateway.conftest import PASSWORD, World, build_world


async def login(world: World, username: str, password: str) -> tuple[int, dict[str, object], str]:
    answer = await world.client.post(
        "/v1/sessions", json={"username": username, "password": password}
    )
    return answer.status_code, answer.json(), answer.headers.get("retry-after", "")


async def test_a_login_answers_a_customer_token_the_api_takes(world: World) -> None:
    status, body, _ = await login(world, "alice1", PASSWORD)

    assert status == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    token = str(body["access_token"])
    assert world.tokens.verify_access_token(token).subject == "alice1"
    balances = await world.client.get("/v1/balances", headers={"Authorization": f"Bearer {token}"})
    assert balances.status_code == 200


async def test_a_wrong_password_and_an_unknown_user_answer_the_same(world: World) -> None:
    wrong = await login(world, "alice1", "Wr0ng-password!")
    unknown = await login(world, "nobody_here", "Wr0ng-password!")

    assert wrong[0] == unknown[0] == 401
    assert {k: v for k, v in wrong[1].items() if k != "request_id"} == {
        k: v for k, v in unknown[1].items() if k != "request_id"
    }


async def test_five_failures_lock_a_real_and_an_unknown_user_alike() -> None:
    world, client = build_world(GatewayLimits(login_attempts=5, login_attempts_per_address=100))
    async with client:
        for _ in range(5):
            assert (await login(world, "alice1", "Wr0ng-password!"))[0] == 401
            assert (await login(world, "nobody_here", "Wr0ng-password!"))[0] == 401
        real = await login(world, "alice1", PASSWORD)
        unknown = await login(world, "nobody_here", PASSWORD)
        other = await login(world, "bobby1", PASSWORD)

    assert real[0] == unknown[0] == 429
    assert real[2] == unknown[2] == "900"
    assert real[1]["detail"] == unknown[1]["detail"] == "too many failed logins: try again later"
    assert other[0] == 200
    audit = [json.loads(line) for line in world.audit_lines.getvalue().splitlines()]
    assert [a["username"] for a in audit if a["event"] == "login_lockout"] == [
        "alice1",
        "nobody_here",
    ]


async def test_an_address_that_fails_too_often_is_locked_for_every_username() -> None:
    world, client = build_world(GatewayLimits(login_attempts=100, login_attempts_per_address=3))
    async with client:
        for name in ("carol1", "dave01", "erin01"):
            await login(world, name, "Wr0ng-password!")
        status, _, retry_after = await login(world, "alice1", PASSWORD)

    assert (status, retry_after) == (429, "900")


async def test_a_forged_an_expired_and_a_service_token_are_refused(world: World) -> None:
    forged = world.token("alice1")[:-4] + "AAAA"
    expired = world.tokens.create_access_token("alice1", expires_delta=timedelta(seconds=-5))
    service = world.tokens.create_access_token("payments", role="service")
    admin = world.tokens.create_access_token("alice1", role="admin")
    for token, detail in [
        (forged, "the token is not valid"),
        (expired, "the token has expired"),
        (service, "the token is not a customer's"),
        (admin, "the token is not a customer's"),
        ("", "send a customer token: Authorization: Bearer <token>"),
    ]:
        answer = await world.client.get(
            "/v1/balances", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 401
        assert answer.json()["detail"] == detail
        assert answer.headers["www-authenticate"].startswith('Bearer realm="order-processor"')


async def test_a_token_in_the_query_string_is_not_taken(world: World) -> None:
    answer = await world.client.get(f"/v1/balances?access_token={world.token()}")

    assert answer.status_code == 401
