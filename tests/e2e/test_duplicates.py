"""The same command more than once: executed once; the same order id with another
request: rejected, never executed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from order_processor.bootstrap import get_order_dao
from order_processor.domain.base import utc_now
from order_processor.domain.commands import ServiceName
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger


async def test_one_order_delivered_three_times_executes_once(harness: Harness) -> None:
    await harness.create_user("dupe_user", usd="1000")
    await harness.add_asset("BTC", "50000")
    buy = harness.market("dupe_user", "buy", "BTC", "0.002")
    for copy in range(3):  # distinct dedup ids: FIFO deduplication does not hide them
        await harness.send_raw(buy.body(), group="dupe_user", dedup=f"copy-{copy}")

    assert await harness.run_worker() == 0, harness.worker_output()

    assert await harness.available("dupe_user") == Decimal("900.00")
    page = await get_order_dao(harness.clients).get_orders_by_user("dupe_user")
    assert [o.status for o in page.items] == [OrderStatus.COMPLETED]
    await assert_ledger(harness.clients, "dupe_user")
    events = await harness.collect_events(
        lambda e: len({x.event_id for x in e}) >= 3 and len(e) >= 5
    )
    # Re-published events carry the same ids: three distinct changes, however many copies.
    assert {e.event_id: e.event_type for e in events} == {
        f"{buy.payload.order_id}:1": EventType.ORDER_ACCEPTED,
        f"{buy.payload.order_id}:2": EventType.ORDER_PROCESSING,
        f"{buy.payload.order_id}:3": EventType.ORDER_COMPLETED,
    }


async def test_a_reused_order_id_with_another_request_is_rejected(harness: Harness) -> None:
    await harness.create_user("reuse_user", usd="1000")
    await harness.add_asset("BTC", "50000")
    first = harness.market("reuse_user", "buy", "BTC", "0.002", order_id="order-42")
    second = harness.market("reuse_user", "buy", "BTC", "0.010", order_id="order-42")
    await harness.send(first, second)

    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order("order-42")
    assert (order.status, order.quantity) == (OrderStatus.COMPLETED, Decimal("0.002"))
    assert await harness.available("reuse_user") == Decimal("900.00")
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.COMMAND_REJECTED for x in e)
    )
    rejected = harness.of_type(EventType.COMMAND_REJECTED)
    assert [(e.data["reason"], e.data["command_id"], e.order_id) for e in rejected] == [
        ("CONFLICTING_DUPLICATE", second.command_id, "order-42")
    ]
    assert events
    await assert_ledger(harness.clients, "reuse_user")


async def test_one_deposit_delivered_three_times_credits_once(harness: Harness) -> None:
    await harness.create_user("dep_user")
    deposit = harness.factory.deposit("dep_user", "250")
    for copy in range(3):
        await harness.send_raw(deposit.body(), group="dep_user", dedup=f"copy-{copy}")

    assert await harness.run_worker() == 0, harness.worker_output()

    assert await harness.available("dep_user") == Decimal("250.00")
    await assert_ledger(harness.clients, "dep_user")
    events = await harness.collect_events(lambda e: len(e) >= 3)
    assert {e.event_id for e in events} == {f"funds:{deposit.username}:{deposit.command_id}"}


async def test_a_reused_command_id_with_another_amount_is_rejected(harness: Harness) -> None:
    await harness.create_user("reuse_dep")
    deposit = harness.factory.deposit("reuse_dep", "100")
    bearer = harness.tokens.create_access_token("reuse_dep")  # the user's own, unbound
    withdraw = harness.factory.withdraw("reuse_dep", "60", token=bearer).model_copy(
        update={"command_id": deposit.command_id}
    )
    await harness.send(deposit)
    await harness.send_raw(withdraw.body(), group="reuse_dep", dedup="second")

    assert await harness.run_worker() == 0, harness.worker_output()

    assert await harness.available("reuse_dep") == Decimal("100.00")
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.COMMAND_REJECTED for x in e)
    )
    assert [e.data["reason"] for e in events if e.event_type is EventType.COMMAND_REJECTED] == [
        "CONFLICTING_DUPLICATE"
    ]
    assert [e.event_type for e in events if e.order_id is None].count(
        EventType.BALANCE_WITHDRAWN
    ) == 0


async def test_a_reused_order_id_with_another_expiry_is_rejected(harness: Harness) -> None:
    await harness.create_user("reuse_exp", usd="1000")
    await harness.add_asset("BTC", "100")
    soon, later = utc_now() + timedelta(hours=1), utc_now() + timedelta(hours=2)
    first = harness.limit("reuse_exp", "buy", "BTC", "1", "50", order_id="o-exp", expires_at=soon)
    second = harness.limit("reuse_exp", "buy", "BTC", "1", "50", order_id="o-exp", expires_at=later)
    await harness.send(first, second)

    assert await harness.run_worker() == 0, harness.worker_output()

    assert (await harness.order("o-exp")).expires_at == soon
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.COMMAND_REJECTED for x in e)
    )
    rejected = [e for e in events if e.event_type is EventType.COMMAND_REJECTED]
    assert [(e.data["reason"], e.data["command_id"]) for e in rejected] == [
        ("CONFLICTING_DUPLICATE", second.command_id)
    ]


async def test_two_users_deposits_under_one_command_id_are_two_events(harness: Harness) -> None:
    await harness.create_user("twin_one")
    await harness.create_user("twin_two")
    one = harness.factory.deposit("twin_one", "10")
    two = harness.factory.deposit("twin_two", "20").model_copy(
        update={"command_id": one.command_id}
    )
    two = harness.signed(ServiceName.PAYMENTS, two)
    await harness.send(one, two)

    assert await harness.run_worker() == 0, harness.worker_output()

    assert (await harness.available("twin_one"), await harness.available("twin_two")) == (
        Decimal("10.00"),
        Decimal("20.00"),
    )
    events = await harness.collect_events(lambda e: len({x.event_id for x in e}) >= 2)
    assert {e.username: e.event_id for e in events} == {
        "twin_one": f"funds:twin_one:{one.command_id}",
        "twin_two": f"funds:twin_two:{one.command_id}",
    }
