"""A worker killed with SIGKILL right after each saga step commits (before its event is
published or its message deleted); a fresh worker finishes every order exactly once."""

from __future__ import annotations

import signal
from decimal import Decimal

import pytest

from order_processor.bootstrap import get_asset_balance_dao
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from tests.e2e.harness import Harness
from tests.ledger import assert_ledger


@pytest.mark.parametrize("step", ["accepted", "debited", "completed"])
async def test_a_buy_survives_a_crash_after_each_step(harness: Harness, step: str) -> None:
    await harness.create_user("crash_user", usd="1000")
    await harness.add_asset("BTC", "50000")
    buy = harness.market("crash_user", "buy", "BTC", "0.004")
    await harness.send(buy)

    crashed = await harness.run_worker(fault=f"crash-after={step}")
    assert crashed == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.total_amount) == (OrderStatus.COMPLETED, Decimal("200.00"))
    assert await harness.available("crash_user") == Decimal("800.00")
    btc = await get_asset_balance_dao(harness.clients).get_asset_balance("crash_user", "BTC")
    assert btc.available == Decimal("0.004")
    await assert_ledger(harness.clients, "crash_user")
    # No status change without its event, even the one whose publish the crash skipped.
    events = await harness.collect_events(lambda e: len({x.event_id for x in e}) >= 3)
    assert {(e.event_type, e.sequence) for e in events} == {
        (EventType.ORDER_ACCEPTED, 1),
        (EventType.ORDER_PROCESSING, 2),
        (EventType.ORDER_COMPLETED, 3),
    }


@pytest.mark.parametrize(
    ("fault", "status", "reason", "usd"),
    [
        ("crash-after=failed", OrderStatus.FAILED, "INSUFFICIENT_BALANCE", "50.00"),
        (
            "fail-step=completed,crash-after=refunded",
            OrderStatus.FAILED,
            "INJECTED_FAULT",
            "50.00",
        ),
    ],
)
async def test_failure_paths_survive_a_crash_after_their_commit(
    harness: Harness, fault: str, status: OrderStatus, reason: str, usd: str
) -> None:
    await harness.create_user("crash_fail", usd="50")
    await harness.add_asset("BTC", "50000")
    quantity = "0.01" if reason == "INSUFFICIENT_BALANCE" else "0.0002"  # 500 USD, or 10
    buy = harness.market("crash_fail", "buy", "BTC", quantity)
    await harness.send(buy)

    assert await harness.run_worker(fault=fault) == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.failure_reason) == (status, reason)
    assert await harness.available("crash_fail") == Decimal(usd)
    await assert_ledger(harness.clients, "crash_fail")
    events = await harness.collect_events(
        lambda e: EventType.ORDER_FAILED in {x.event_type for x in e}
    )
    assert EventType.ORDER_ACCEPTED in {e.event_type for e in events}


async def test_a_sell_survives_a_crash_after_its_debit(harness: Harness) -> None:
    await harness.create_user("crash_sell")
    await harness.add_asset("BTC", "50000")
    await harness.give_asset("crash_sell", "BTC", "0.5")
    sell = harness.market("crash_sell", "sell", "BTC", "0.1")
    await harness.send(sell)

    assert await harness.run_worker(fault="crash-after=debited") == -signal.SIGKILL
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order(sell.payload.order_id)
    assert (order.status, order.total_amount) == (OrderStatus.COMPLETED, Decimal("5000.00"))
    assert await harness.available("crash_sell") == Decimal("5000.00")
    btc = await get_asset_balance_dao(harness.clients).get_asset_balance("crash_sell", "BTC")
    assert btc.available == Decimal("0.4")
    await assert_ledger(harness.clients, "crash_sell")


async def test_a_deposit_survives_a_crash_after_its_commit(harness: Harness) -> None:
    await harness.create_user("crash_dep")
    await harness.send(harness.factory.deposit("crash_dep", "75.25"))

    assert await harness.run_worker(fault="crash-after=funds") == -signal.SIGKILL
    assert await harness.run_worker() == 0, harness.worker_output()

    assert await harness.available("crash_dep") == Decimal("75.25")
    await assert_ledger(harness.clients, "crash_dep")
    events = await harness.collect_events(lambda e: len(e) >= 1)
    assert [e.event_type for e in events] == [EventType.BALANCE_DEPOSITED]


@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_a_permanent_failure_after_the_debit_is_compensated(
    harness: Harness, side: str
) -> None:
    await harness.create_user("comp_user", usd="1000")
    await harness.add_asset("BTC", "50000")
    await harness.give_asset("comp_user", "BTC", "1")
    order_command = harness.market("comp_user", side, "BTC", "0.01")
    await harness.send(order_command)

    assert await harness.run_worker(fault="fail-step=completed") == 0, harness.worker_output()

    order = await harness.order(order_command.payload.order_id)
    assert (order.status, order.step, order.failure_reason) == (
        OrderStatus.FAILED,
        "refunded",
        "INJECTED_FAULT",
    )
    assert await harness.available("comp_user") == Decimal("1000.00")
    btc = await get_asset_balance_dao(harness.clients).get_asset_balance("comp_user", "BTC")
    assert btc.available == Decimal("1")
    await assert_ledger(harness.clients, "comp_user")  # payment+refund or sell+refund
    events = await harness.collect_events(lambda e: len(e) >= 3)
    assert [e.event_type for e in events] == [
        EventType.ORDER_ACCEPTED,
        EventType.ORDER_PROCESSING,
        EventType.ORDER_FAILED,
    ]
