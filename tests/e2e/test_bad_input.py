"""Bad input of every kind: a clear `command.rejected` each, nothing lost, and the worker
keeps serving (the good order sent last completes)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from decimal import Decimal

from jose import jwt

from order_processor.bootstrap import get_user_dao
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from order_processor.domain.users import UserUpdate
from tests.e2e.conftest import SECRET
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger


def envelope(harness: Harness, command_id: str, **overrides: object) -> str:
    body: dict[str, object] = {
        "schema": "order-processor/command/v1",
        "command_id": command_id,
        "type": "Withdraw",
        "username": "good_user",
        "issued_at": "2026-01-01T00:00:00Z",
        "auth": harness.tokens.create_access_token("good_user"),
        "payload": {"amount": "10.00"},
    }
    body.update(overrides)
    return json.dumps(body)


def place(asset: str, quantity: str = "1") -> dict[str, str]:
    order = {"order_type": "MARKET_BUY", "asset_id": asset, "quantity": quantity}
    return {"order_id": f"o-{asset}-{quantity}", **order}


async def test_each_bad_command_is_rejected_with_its_reason(harness: Harness) -> None:
    await harness.create_user("good_user", usd="100")
    await harness.create_user("off_user_1", usd="100")
    await get_user_dao(harness.clients).update_user("off_user_1", UserUpdate(is_active=False))
    await harness.add_asset("BTC", "50")
    await harness.add_asset("DEAD", "5", active=False)
    now = harness.tokens.create_access_token
    claims = {"sub": "good_user", "role": "customer", "iat": 1_700_000_000, "exp": 4_000_000_000}
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = jwt.encode(claims, "not-the-secret-" + "y" * 32, algorithm="HS256")
    expired = harness.tokens.create_access_token("good_user", expires_delta=timedelta(minutes=-1))
    cases = {
        "invalid-json": ("{not json", "MALFORMED_JSON", None),
        "unknown-type": (
            envelope(harness, "unknown-type", type="Teleport"),
            "INVALID_COMMAND",
            "type",
        ),
        "missing-fields": (
            json.dumps({"type": "Withdraw", "command_id": "missing-fields"}),
            "UNAUTHORIZED",
            "no token",
        ),
        "missing-username": (
            envelope(harness, "missing-username", username=None),
            "INVALID_COMMAND",
            "username",
        ),
        "negative": (
            envelope(harness, "negative", payload={"amount": "-5"}),
            "INVALID_COMMAND",
            "must not be negative",
        ),
        "zero": (
            envelope(harness, "zero", payload={"amount": "0"}),
            "INVALID_COMMAND",
            "greater than zero",
        ),
        "nan": (
            envelope(harness, "nan", payload={"amount": "NaN"}),
            "INVALID_COMMAND",
            "not a finite number",
        ),
        "huge": (
            envelope(harness, "huge", payload={"amount": "1e20"}),
            "INVALID_COMMAND",
            "too large",
        ),
        "over-precise": (
            envelope(harness, "over-precise", payload={"amount": "1.001"}),
            "INVALID_COMMAND",
            "more than 2 decimal places",
        ),
        "float": (
            envelope(harness, "float", payload={"amount": 1.5}),
            "INVALID_COMMAND",
            "not floats",
        ),
        "unknown-user": (
            envelope(
                harness,
                "unknown-user",
                username="ghost_user",
                auth=now("ghost_user"),
                type="PlaceOrder",
                payload=place("BTC"),
            ),
            "UNKNOWN_USER",
            None,
        ),
        "unknown-asset": (
            envelope(harness, "unknown-asset", type="PlaceOrder", payload=place("NOPE")),
            "UNKNOWN_ASSET",
            None,
        ),
        "inactive-asset": (
            envelope(harness, "inactive-asset", type="PlaceOrder", payload=place("DEAD")),
            "ASSET_NOT_TRADABLE",
            None,
        ),
        "over-asset-precision": (
            envelope(
                harness,
                "over-asset-precision",
                type="PlaceOrder",
                payload=place("BTC", "0.000000001"),
            ),
            "INVALID_QUANTITY",
            None,
        ),
        "forged-token": (envelope(harness, "forged-token", auth=forged), "UNAUTHORIZED", None),
        "expired-token": (envelope(harness, "expired-token", auth=expired), "TOKEN_EXPIRED", None),
        "none-alg-token": (
            envelope(harness, "none-alg-token", auth=f"{unsigned}.{payload}."),
            "UNAUTHORIZED",
            None,
        ),
        "other-users-token": (
            envelope(harness, "other-users-token", auth=now("mallory_1")),
            "FORBIDDEN",
            None,
        ),
        "system-command": (
            envelope(harness, "system-command", type="ExecuteOrder", payload={"order_id": "x"}),
            "FORBIDDEN",
            None,
        ),
        "too-large": (
            envelope(harness, "too-large", padding="x" * 20_000),
            "MESSAGE_TOO_LARGE",
            None,
        ),
        "deeply-nested": (
            '{"command_id": "deeply-nested", "x": ' + "[" * 5000 + "}",
            "MALFORMED_JSON",
            None,
        ),
        "not-an-object": ('["Deposit", "good_user"]', "INVALID_COMMAND", None),
        "disabled-user": (
            envelope(
                harness,
                "disabled-user",
                username="off_user_1",
                auth=now("off_user_1"),
                type="Withdraw",
            ),
            "USER_INACTIVE",
            None,
        ),
    }
    # Bodies whose command id cannot be read are answered without one; those whose sender
    # is not authenticated carry it only as `claimed_command_id`, and name no user.
    anonymous = {"invalid-json", "deeply-nested", "not-an-object", "too-large"}
    unauthenticated = {"missing-fields", "forged-token", "expired-token", "none-alg-token"}
    for index, (body, _, _) in enumerate(cases.values()):
        await harness.send_raw(body, group=f"bad-{index}")
    good = harness.market("good_user", "buy", "BTC", "1")
    await harness.send(good)

    assert await harness.run_worker() == 0, harness.worker_output()

    events = await harness.collect_events(
        lambda e: len([x for x in e if x.event_type is EventType.COMMAND_REJECTED]) >= len(cases)
    )
    rejected = [e for e in events if e.event_type is EventType.COMMAND_REJECTED]
    rejections = [e.data for e in rejected]
    by_case = {
        r["command_id"] or r["claimed_command_id"]: r
        for r in rejections
        if r["command_id"] or r.get("claimed_command_id")
    }
    named = {e.data["command_id"] or e.data.get("claimed_command_id"): e.username for e in rejected}
    assert {case for case, user in named.items() if case and user is None} == unauthenticated
    assert {name: data["reason"] for name, data in by_case.items()} == {
        name: reason for name, (_, reason, _) in cases.items() if name not in anonymous
    }
    assert sorted(
        r["reason"] for r in rejections if not (r["command_id"] or r.get("claimed_command_id"))
    ) == sorted(cases[name][1] for name in anonymous)
    for name, (_, _, fragment) in cases.items():
        if fragment and name not in anonymous:
            assert fragment in by_case[name]["message"], (name, by_case[name]["message"])
    order = await harness.order(good.payload.order_id)
    assert (order.status, order.total_amount) == (OrderStatus.COMPLETED, Decimal("50.00"))
    assert await harness.available("good_user") == Decimal("50.00")
    await assert_ledger(harness.clients, "good_user")
    assert await harness.available("off_user_1") == Decimal("100.00")
    output = harness.worker_output()
    assert output.count('"event": "access_denied"') == 6
    assert forged not in output
    assert expired not in output
    assert SECRET not in output
