"""One user's FIFO group carrying hostile messages between good ones: every bad one is
rejected at once with its reason, every good one applies, nothing reaches the DLQ; and a
command that fails for a bug lets the rest of its group go on at its last delivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any

from jose import jwt

from order_processor.bootstrap import open_clients
from order_processor.config import Settings
from order_processor.domain.commands import ExecuteOrder, ExecutePayload, ServiceName
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from order_processor.messaging.producer import UNSIGNED, Producer
from tests.e2e.conftest import SECRET
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger
from tests.support import cli_env, run_cli

VICTIM = "victim_01"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def nested_header_token() -> str:
    head = b64(("[" * 1400 + "]" * 1400).encode())
    body = b64(json.dumps({"sub": VICTIM, "role": "customer"}).encode())
    mac = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def signed(**claims: Any) -> str:
    now = int(time.time())
    base = {"sub": VICTIM, "role": "customer", "iat": now, "exp": now + 600}
    return str(jwt.encode({**base, **claims}, SECRET, algorithm="HS256"))


def body(harness: Harness, command_id: str, **overrides: Any) -> str:
    document: dict[str, Any] = {
        "schema": "order-processor/command/v1",
        "command_id": command_id,
        "type": "Withdraw",
        "username": VICTIM,
        "issued_at": "2026-01-01T00:00:00Z",
        "auth": harness.tokens.create_access_token(VICTIM),
        "payload": {"amount": "10.00"},
    }
    document.update(overrides)
    return json.dumps(document)


async def test_hostile_messages_never_hold_back_a_users_good_commands(harness: Harness) -> None:
    await harness.create_user(VICTIM, usd="1000")
    await harness.add_asset("BTC", "100")
    order = harness.market(VICTIM, "buy", "BTC", "1")
    hostile = {
        "old-issued": body(harness, "old-issued", issued_at="0001-01-01T00:00:00+14:00"),
        "old-expiry": body(
            harness,
            "old-expiry",
            type="PlaceOrder",
            payload={
                "order_type": "LIMIT_BUY",
                "asset_id": "BTC",
                "quantity": "1",
                "limit_price": "1",
                "expires_at": "0001-01-01T00:00:00+14:00",
            },
        ),
        "huge-amount": body(harness, "huge-amount", payload={"amount": "1e99999999999999999999"}),
        "nested-header": body(harness, "nested-header", auth=nested_header_token()),
        "exp-1e20": body(harness, "exp-1e20", auth=signed(exp=1e20)),
        "role-list": body(harness, "role-list", auth=signed(role=["admin"])),
        "future": body(harness, "future", issued_at="9999-12-31T23:59:59Z"),
        "own-deposit": body(harness, "own-deposit", type="Deposit"),
    }
    good = [harness.factory.withdraw(VICTIM, "100"), order, harness.factory.deposit(VICTIM, "7")]
    # Interleaved in one FIFO group: good, three bad, good, the rest bad, good.
    bodies = [good[0].body(), *list(hostile.values())[:3], good[1].body()]
    bodies += [*list(hostile.values())[3:], good[2].body()]
    for index, text in enumerate(bodies):
        await harness.send_raw(text, group=VICTIM, dedup=f"d{index}")

    assert await harness.run_worker() == 0, harness.worker_output()

    assert (await harness.order(order.payload.order_id)).status is OrderStatus.COMPLETED
    assert await harness.available(VICTIM) == Decimal("807.00")  # 1000 - 100 - 100 + 7
    await assert_ledger(harness.clients, VICTIM)
    events = await harness.collect_events(
        lambda e: len([x for x in e if x.event_type is EventType.COMMAND_REJECTED]) >= len(hostile)
    )
    rejected = [e for e in events if e.event_type is EventType.COMMAND_REJECTED]
    reasons = {
        e.data["command_id"] or e.data["claimed_command_id"]: e.data["reason"] for e in rejected
    }
    assert reasons == {
        "old-issued": "INVALID_COMMAND",
        "old-expiry": "INVALID_COMMAND",
        "huge-amount": "INVALID_COMMAND",
        "nested-header": "UNAUTHORIZED",
        "exp-1e20": "UNAUTHORIZED",
        "role-list": "UNAUTHORIZED",
        "future": "FUTURE_TIMESTAMP",
        "own-deposit": "FORBIDDEN",
    }
    # Unauthenticated senders' rejections name nobody (not even the user they claim).
    for event in rejected:
        unauthenticated = event.data["reason"] == "UNAUTHORIZED"
        assert (event.username is None) == unauthenticated
    assert await harness.dead_letters() == 0
    output = harness.worker_output()
    assert "failed unexpectedly" not in output
    assert '"command handled: retry"' not in output


async def test_a_command_broken_by_a_bug_goes_to_the_dead_letters_with_its_cancel_only(
    aws_endpoint: str,
) -> None:
    """Once its failure budget is spent the broken PlaceOrder goes to the DLQ with the CancelOrder
    that refers to it (a cancel must not overtake its order), and the user's other
    commands go on. Once the bug is fixed, a redrive places the order and cancels it."""
    from tests.e2e.conftest import deployment_settings
    from tests.support import Clients, destroy

    settings: Settings = deployment_settings(aws_endpoint, max_failures=2)
    Clients(settings).provisioner().apply(settings.resources())
    try:
        async with open_clients(settings) as clients:
            harness = await Harness.start(settings, clients)
            await harness.create_user("poisoned_1", usd="100")
            await harness.add_asset("BTC", "100")
            broken = harness.limit("poisoned_1", "buy", "BTC", "0.1", "50")
            cancel = harness.factory.cancel("poisoned_1", broken.payload.order_id)
            deposit = harness.factory.deposit("poisoned_1", "25")
            withdraw = harness.factory.withdraw("poisoned_1", "5")
            await harness.send(broken, deposit, cancel, withdraw)

            # Every PlaceOrder breaks before its first commit; the others do not.
            assert await harness.run_worker(fault="break-step=held") == 0

            assert await harness.available("poisoned_1") == Decimal("120.00")
            await assert_ledger(harness.clients, "poisoned_1")
            letters = run_cli("dlq", "list", env=cli_env(settings)).stdout
            assert [c.command_id in letters for c in (broken, cancel, deposit, withdraw)] == [
                True,
                True,
                False,
                False,
            ], letters
            assert letters.index(broken.command_id) < letters.index(cancel.command_id)

            env = {**cli_env(settings), "ORDER_PROCESSOR_QUEUE_KIND": "fifo"}
            assert run_cli("dlq", "redrive", env=env).returncode == 0
            assert await harness.run_worker() == 0, harness.worker_output()
            order = await harness.order(broken.payload.order_id)
            assert order.status is OrderStatus.CANCELLED
            assert await harness.available("poisoned_1") == Decimal("120.00")
            await assert_ledger(harness.clients, "poisoned_1")
    finally:
        destroy(settings)


async def test_a_services_rejected_command_names_the_service_not_the_user_it_claims(
    harness: Harness,
) -> None:
    await harness.create_user("alice_01")
    update = harness.factory.update_price("NOPE", "1")
    prices = harness.signed(
        ServiceName.PRICE_FEED, update.model_copy(update={"username": "alice_01"})
    )
    deposit = harness.factory.deposit("ghost_user", "5")
    execute = ExecuteOrder(
        command_id="exec-ghost",
        username="victim_99",
        auth=UNSIGNED,
        payload=ExecutePayload(order_id="no-such-order"),
    )
    execute = harness.signed(ServiceName.LIMIT_MATCHER, execute)
    url = await harness.clients.queue_url(harness.settings.resources().price_updates_queue.name)
    await Producer(harness.clients.sqs, url, fifo=False).send(prices)
    await harness.send(deposit, execute)
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()
    assert await harness.run_worker() == 0, harness.worker_output()

    events = await harness.collect_events(
        lambda e: len([x for x in e if x.event_type is EventType.COMMAND_REJECTED]) >= 3
    )
    named = {
        e.data["command_id"]: (e.data["reason"], e.username)
        for e in events
        if e.event_type is EventType.COMMAND_REJECTED
    }
    assert named == {
        prices.command_id: ("UNKNOWN_ASSET", "price-feed"),
        deposit.command_id: ("UNKNOWN_USER", "payments"),
        "exec-ghost": ("ORDER_NOT_FOUND", "limit-matcher"),
    }
