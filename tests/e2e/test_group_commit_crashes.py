"""The group commit's crash points: a worker killed with SIGKILL while carrying out a batch
of one user's mixed commands (before its one write, right after it, after its publish);
a fresh worker then finishes every command exactly once: the ledger whole, each balance
what one-at-a-time processing leaves, each order's last event its final state's."""

from __future__ import annotations

import signal
from decimal import Decimal

import pytest

from order_processor.bootstrap import get_asset_balance_dao
from order_processor.domain.commands import PlaceOrder
from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import OrderCreate, OrderStatus, OrderType
from order_processor.faultproxy import FaultPlan, FaultProxyHandle
from tests.e2e.harness import Harness
from tests.e2e.test_crashes import assert_final_events
from tests.ledger import assert_ledger


# As the saga's crash points are proven: with AWS's failures switched on (a low rate, seeded
# per test), lost answers and throttling among them.
@pytest.mark.aws_faults
@pytest.mark.parametrize(
    "point", ["grouped", "funds", "converted", "completed", "cancelled", "announced"]
)
async def test_a_batch_of_one_users_commands_survives_a_crash_at_each_group_commit_point(
    harness: Harness, point: str
) -> None:
    user = f"grp_{point}"
    orders = await send_mixed_batch(harness, user)

    crashed = await harness.run_worker(fault=f"crash-after={point}")
    assert crashed == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker() == 0, harness.worker_output()

    await assert_mixed_batch_done_once(harness, user, orders)


async def send_mixed_batch(harness: Harness, user: str) -> list[PlaceOrder]:
    """One user's deposits (USD, EUR), orders of each kind, a cancel, a withdrawal and a
    conversion (50 EUR for 53.93 USD: at 1.0842 less 0.50 %, rounded down), a market buy
    of an asset quoted in euros paid in dollars (100.00 EUR for 108.97 USD: at 1 / 1.0842
    less 0.50 %, 0.9177273565 EUR per USD, rounded up) and a limit buy of it holding
    40.00 EUR (held and completed in the write a crash at any point follows), in one
    batch."""
    await harness.create_user(user, usd="1000")
    await harness.add_asset("BTC", "100")
    await harness.add_asset("BTCEUR", "100", quote="EUR")
    await harness.give_asset(user, "BTC", "5")
    await harness.set_rates(("EUR", "1.0842"))
    resting = harness.limit(user, "buy", "BTC", "1", "90")
    paid_in = OrderCreate(
        order_type=OrderType.MARKET_BUY, asset_id="BTCEUR", quantity="1", pay_currency="USD"
    )
    orders = [
        harness.market(user, "buy", "BTC", "2"),
        resting,
        harness.market(user, "sell", "BTC", "1"),
        harness.limit(user, "sell", "BTC", "1", "80"),  # marketable: sold at 100
        harness.factory.place_order(user, paid_in),
        harness.limit(user, "buy", "BTCEUR", "1", "40"),
    ]
    await harness.send(
        harness.factory.deposit(user, "200"),
        harness.factory.deposit(user, "100", currency="EUR"),
        *orders[4:],  # early: in the first write of the batch, which each point follows
        orders[0],
        resting,
        harness.factory.cancel(user, resting.payload.order_id),
        harness.factory.withdraw(user, "100"),
        harness.factory.convert(user, "50", "EUR", "USD"),
        *orders[2:4],
    )
    return orders


async def assert_mixed_batch_done_once(
    harness: Harness, user: str, orders: list[PlaceOrder]
) -> None:
    final = [await harness.order(o.payload.order_id) for o in orders]
    assert [o.status for o in final] == [
        OrderStatus.COMPLETED,
        OrderStatus.CANCELLED,
        OrderStatus.COMPLETED,
        OrderStatus.COMPLETED,
        OrderStatus.COMPLETED,
        OrderStatus.QUEUED,
    ]
    assert (final[4].total_amount, final[4].paid_amount) == (Decimal("100.00"), Decimal("108.97"))
    # +200 -200 -100 +53.93 +100 +100 -108.97
    assert await harness.cash(user, "USD") == (Decimal("1044.96"), Decimal(0))
    # +100 -50; +100.00 -100.00 (bought and paid); 40.00 held
    assert await harness.cash(user, "EUR") == (Decimal("10.00"), Decimal("40.00"))
    assert (await harness.liquidity(user, "EUR"), await harness.liquidity(user, "USD")) == (
        Decimal("-50.00"),  # 50.00 - 100.00
        Decimal("55.04"),  # -53.93 + 108.97
    )
    holding = await get_asset_balance_dao(harness.clients).get_asset_balance(user, "BTC")
    assert (holding.available, holding.held) == (Decimal(5), Decimal(0))
    quoted = await get_asset_balance_dao(harness.clients).get_asset_balance(user, "BTCEUR")
    assert (quoted.available, quoted.held) == (Decimal(1), Decimal(0))
    await assert_ledger(harness.clients, user)
    await assert_final_events(harness, final)

    def heard(events: list[Event]) -> set[tuple[EventType, str | None]]:
        return {(e.event_type, e.data.get("currency")) for e in events if not e.order_id}

    cash_events = {
        (EventType.BALANCE_DEPOSITED, "USD"),
        (EventType.BALANCE_DEPOSITED, "EUR"),
        (EventType.BALANCE_WITHDRAWN, "USD"),
        (EventType.BALANCE_CONVERTED, None),
    }
    assert heard(await harness.collect_events(lambda e: cash_events <= heard(e))) == cash_events


async def test_a_batch_of_one_users_commands_is_done_once_when_aws_loses_many_answers(
    harness: Harness, proxy: FaultProxyHandle
) -> None:
    """Lost answers (the write committed, its answer never came back) at a high rate: the
    batch's write is among them, and its commands, carried out one by one, find it."""
    user = "grp_lost"
    orders = await send_mixed_batch(harness, user)
    proxy.set_plan(
        FaultPlan.parse("lost.TransactWriteItems=0.5,lost.PublishBatch=0.3,conflict=on"), seed=4
    )

    worker = harness.start_worker(env={"AWS_ENDPOINT_URL": proxy.endpoint})
    assert await harness.wait(worker) == 0, harness.worker_output()
    lost = proxy.stats().injected("lost", "TransactWriteItems")
    proxy.set_plan(FaultPlan.parse(""))

    await assert_mixed_batch_done_once(harness, user, orders)
    assert await harness.dead_letters() == 0
    assert lost, "no write's answer was lost: the test proves nothing"
