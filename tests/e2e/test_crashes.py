"""A worker killed with SIGKILL right after each write commits (before its events are
published or its message deleted); a fresh worker finishes every command exactly once
and publishes the stored state's event. Every commit point of the saga is here: a market
order's one write (completed, or failed), a limit order's (held, completed when marketable
or executed, cancelled, expired, released), a deposit's (funds; in another currency after
reading its rate), a conversion's (converted) and a market buy of a euro asset paid in
dollars (completed, with its conversion); and the limit matcher's write of a rate
(rated)."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from order_processor.bootstrap import get_asset_balance_dao, get_user_dao
from order_processor.bootstrap.clients import get_rate_store
from order_processor.domain.base import utc_now
from order_processor.domain.commands import PlaceOrder
from order_processor.domain.events import EventType
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.users import UserUpdate
from tests.e2e.harness import AHEAD, DUE_IN, Harness
from tests.ledger import assert_ledger

# The crash points proven with AWS's failures switched on (a low rate, seeded per test).
pytestmark = pytest.mark.aws_faults


async def crash_then_finish(harness: Harness, step: str, ahead: timedelta | None = None) -> None:
    crashed = await harness.run_worker(fault=f"crash-after={step}", ahead=ahead)
    assert crashed == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker(ahead=ahead) == 0, harness.worker_output()


async def crash_after_each_ending(
    harness: Harness,
    orders: tuple[PlaceOrder, PlaceOrder, PlaceOrder, PlaceOrder],
    executing_price: str,
    refuse: Callable[[], Awaitable[None]],
    held: tuple[str, str],
) -> dict[str, Order]:
    """Four resting orders of one user on one asset, a crash after each write that ends
    one: held (all placed), completed (the first, executed at `executing_price`),
    cancelled (the second), expired (the third, due by AHEAD), released (the fourth,
    executed after `refuse` made its execution fail); once placed, `held` (an amount, its
    currency) is held once. Their final states."""
    executed, cancelled, _, _ = orders
    user, asset_id = executed.username, executed.payload.asset_id
    await harness.send(*orders)
    await crash_then_finish(harness, "held")
    assert {(await harness.order(o.payload.order_id)).status for o in orders} == {
        OrderStatus.QUEUED
    }
    amount, currency = held
    assert (await harness.cash(user, currency))[1] == Decimal(amount)
    await harness.send_prices((asset_id, executing_price))
    assert await harness.run_worker(kind="limit-matcher") == 0
    await crash_then_finish(harness, "completed")
    await harness.send(harness.factory.cancel(user, cancelled.payload.order_id))
    await crash_then_finish(harness, "cancelled")
    await harness.sweep_ahead()
    await crash_then_finish(harness, "expired", ahead=AHEAD)
    await refuse()
    assert await harness.run_worker(kind="limit-matcher") == 0
    await crash_then_finish(harness, "released")
    final = {o.payload.order_id: await harness.order(o.payload.order_id) for o in orders}
    assert [final[o.payload.order_id].status for o in orders] == [
        OrderStatus.COMPLETED,
        OrderStatus.CANCELLED,
        OrderStatus.EXPIRED,
        OrderStatus.FAILED,
    ]
    return final


async def assert_final_events(harness: Harness, orders: list[Order]) -> None:
    """Each order's last event is its final state's, at its stored sequence."""
    for order in orders:
        kind = EventType(f"order.{order.status.value.lower()}")
        assert await last_event(harness, order.order_id, kind) == (kind, order.sequence)


async def last_event(harness: Harness, order_id: str, kind: EventType) -> tuple[EventType, int]:
    events = await harness.collect_events(
        lambda e: any(x.event_type is kind and x.order_id == order_id for x in e)
    )
    last = max((e for e in events if e.order_id == order_id), key=lambda e: e.sequence)
    return last.event_type, last.sequence


@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_a_market_order_survives_a_crash_after_its_write(harness: Harness, side: str) -> None:
    await harness.create_user("crash_user", usd="1000")
    await harness.add_asset("BTC", "50000")
    await harness.give_asset("crash_user", "BTC", "0.5")
    order = harness.market("crash_user", side, "BTC", "0.004")
    await harness.send(order)

    await crash_then_finish(harness, "completed")

    stored = await harness.order(order.payload.order_id)
    assert (stored.status, stored.total_amount) == (OrderStatus.COMPLETED, Decimal("200.00"))
    usd, btc = ("800.00", "0.504") if side == "buy" else ("1200.00", "0.496")
    assert await harness.available("crash_user") == Decimal(usd)
    holding = await get_asset_balance_dao(harness.clients).get_asset_balance("crash_user", "BTC")
    assert holding.available == Decimal(btc)
    await assert_ledger(harness.clients, "crash_user")
    # The crash skipped the publish: the redelivery publishes the stored state's event.
    assert await last_event(harness, stored.order_id, EventType.ORDER_COMPLETED) == (
        EventType.ORDER_COMPLETED,
        3,
    )


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("crash-after=failed", "INSUFFICIENT_BALANCE"),
        ("fail-step=completed,crash-after=failed", "INJECTED_FAULT"),
    ],
)
async def test_a_failed_order_survives_a_crash_after_its_write(
    harness: Harness, fault: str, reason: str
) -> None:
    await harness.create_user("crash_fail", usd="50")
    await harness.add_asset("BTC", "50000")
    quantity = "0.01" if reason == "INSUFFICIENT_BALANCE" else "0.0002"  # 500 USD, or 10
    buy = harness.market("crash_fail", "buy", "BTC", quantity)
    await harness.send(buy)

    assert await harness.run_worker(fault=fault) == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, reason)
    assert await harness.available("crash_fail") == Decimal("50.00")  # nothing moved
    await assert_ledger(harness.clients, "crash_fail")
    assert await last_event(harness, order.order_id, EventType.ORDER_FAILED) == (
        EventType.ORDER_FAILED,
        2,
    )


async def test_a_deposit_survives_a_crash_after_its_commit(harness: Harness) -> None:
    await harness.create_user("crash_dep")
    await harness.send(harness.factory.deposit("crash_dep", "75.25"))

    await crash_then_finish(harness, "funds")

    assert await harness.available("crash_dep") == Decimal("75.25")
    await assert_ledger(harness.clients, "crash_dep")
    events = await harness.collect_events(lambda e: len(e) >= 1)
    assert [e.event_type for e in events] == [EventType.BALANCE_DEPOSITED]


async def test_funds_in_another_currency_and_a_conversion_survive_a_crash_after_each_commit(
    harness: Harness,
) -> None:
    """The EUR rate through the matcher, killed right after writing it; a EUR deposit
    (its write after reading the rate), then 50 EUR sold for USD; then a limit buy of an
    asset quoted in euros and a market buy of it paid in dollars (completed): each applied
    once, the crash having skipped each one's publish; the redelivery publishes the
    stored conversion's event under the id the first publish would have used, and the
    orders' events."""
    user = "crash_fx"
    await harness.create_user(user)
    await harness.add_asset("ETHEUR", "2000", precision=6, quote="EUR")
    (update,) = await harness.send_rates(("EUR", "1.0842"))
    crashed = await harness.run_worker(kind="limit-matcher", fault="crash-after=rated")
    assert crashed == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()
    stored = (await get_rate_store(harness.clients, harness.settings).rates())["EUR"]
    assert (stored.rate, stored.as_of, stored.command_id) == (
        Decimal("1.0842"),
        update.issued_at,
        update.command_id,
    )
    await harness.send(harness.factory.deposit(user, "75.25", currency="EUR"))
    await crash_then_finish(harness, "funds")
    conversion = harness.factory.convert(user, "50.00", "EUR", "USD")
    await harness.send(conversion)

    await crash_then_finish(harness, "converted")

    # 50 EUR at 1.0842 less 0.50 % (1.078779 per EUR) buy 53.93 USD, rounded down.
    assert await harness.cash(user, "EUR") == (Decimal("25.25"), Decimal(0))
    assert await harness.cash(user, "USD") == (Decimal("53.93"), Decimal(0))
    assert await harness.liquidity(user, "EUR") == Decimal("50.00")
    assert await harness.liquidity(user, "USD") == Decimal("-53.93")
    await assert_ledger(harness.clients, user)
    events = await harness.collect_events(lambda e: len(e) >= 2)
    assert [(e.event_type, e.data.get("currency")) for e in events[:1]] == [
        (EventType.BALANCE_DEPOSITED, "EUR")
    ]
    converted = [e for e in events if e.event_type is EventType.BALANCE_CONVERTED]
    assert {e.event_id for e in converted} == {f"converted:{user}:{conversion.command_id}"}
    assert {
        (e.data["sold"], e.data["sell"], e.data["bought"], e.data["buy"]) for e in converted
    } == {("50.00", "EUR", "53.93", "USD")}

    await crash_then_quoted_orders(harness, user)


async def crash_then_quoted_orders(harness: Harness, user: str) -> None:
    """`user` holds 25.25 EUR and 53.93 USD (the EUR rate 1.0842): a limit buy of ETHEUR
    at 1500 EUR holding 15.00 EUR, and a market buy of it (2000 EUR) paid in dollars,
    killed after `completed` (the hold's write before it, or the same one when the worker
    groups the two): 20.00 EUR bought for 21.80 USD (at 1 / 1.0842 less 0.50 %,
    0.9177273565 EUR per USD: 21.79296..., rounded up)."""
    resting = harness.limit(user, "buy", "ETHEUR", "0.01", "1500")
    request = OrderCreate(
        order_type=OrderType.MARKET_BUY, asset_id="ETHEUR", quantity="0.01", pay_currency="USD"
    )
    paid_in = harness.factory.place_order(user, request)
    await harness.send(resting, paid_in)

    await crash_then_finish(harness, "completed")

    bought = await harness.order(paid_in.payload.order_id)
    assert (bought.status, bought.total_amount, bought.paid_amount, bought.pay_rate) == (
        OrderStatus.COMPLETED,
        Decimal("20.00"),
        Decimal("21.80"),
        Decimal("0.9177273565"),
    )
    assert await harness.cash(user, "USD") == (Decimal("32.13"), Decimal(0))  # 53.93 - 21.80
    assert await harness.cash(user, "EUR") == (Decimal("10.25"), Decimal("15.00"))
    assert await harness.liquidity(user, "USD") == Decimal("-32.13")  # -53.93 + 21.80
    assert await harness.liquidity(user, "EUR") == Decimal("30.00")  # 50.00 - 20.00
    holding = await get_asset_balance_dao(harness.clients).get_asset_balance(user, "ETHEUR")
    assert (holding.available, holding.held) == (Decimal("0.01"), Decimal(0))
    await assert_ledger(harness.clients, user)
    placed = await harness.order(resting.payload.order_id)
    await assert_final_events(harness, [placed, bought])
    completed = {
        (e.data["paid_amount"], e.data["pay_currency"], e.data["total_amount"])
        for e in harness.of_type(EventType.ORDER_COMPLETED)
        if e.order_id == bought.order_id
    }
    assert completed == {("21.80", "USD", "20.00")}


async def test_a_limit_order_survives_a_crash_after_each_of_its_writes(harness: Harness) -> None:
    """held (placed), completed (executed), then for others cancelled, expired, released;
    of an asset quoted in euros, each buy holding euros once (the conditional orders'
    test below holds dollars)."""
    await harness.create_user("crash_lim")
    await harness.fund("crash_lim", "1000", currency="EUR")
    await harness.set_rates(("EUR", "1.0842"))
    await harness.add_asset("SOLEUR", "100", quote="EUR")
    await harness.give_asset("crash_lim", "SOLEUR", "10")
    expiry = utc_now() + DUE_IN
    executed = harness.limit("crash_lim", "buy", "SOLEUR", "1", "90")
    cancelled = harness.limit("crash_lim", "buy", "SOLEUR", "1", "80")
    expired = harness.limit("crash_lim", "buy", "SOLEUR", "1", "70", expires_at=expiry)
    refused = harness.limit("crash_lim", "sell", "SOLEUR", "2", "101")
    orders = (executed, cancelled, expired, refused)

    async def refuse() -> None:
        await get_user_dao(harness.clients).update_user("crash_lim", UserUpdate(is_active=False))
        await harness.send_prices(("SOLEUR", "102"))

    final = await crash_after_each_ending(harness, orders, "89", refuse, ("240.00", "EUR"))
    assert final[refused.payload.order_id].failure_reason == "USER_INACTIVE"
    assert await harness.cash("crash_lim", "EUR") == (Decimal("911.00"), Decimal(0))  # 1000 - 89
    assert await harness.cash("crash_lim", "USD") == (Decimal(0), Decimal(0))
    await assert_ledger(harness.clients, "crash_lim")
    await assert_final_events(harness, list(final.values()))


async def test_a_v1_orders_refund_survives_a_crash_after_its_write(harness: Harness) -> None:
    """An order a v1 worker left debited, whose credit fails for good: the refund's write
    is the commit point; the redelivered ResumeOrder finds it FAILED and says so again."""
    await harness.create_user("crash_ref", usd="1000")
    await harness.add_asset("BTC", "100")
    buy = harness.market("crash_ref", "buy", "BTC", "2")
    await harness.strand(buy, OrderStatus.PROCESSING)
    await harness.sweep(recovery_age=0)

    crashed = await harness.run_worker(fault="fail-step=completed,crash-after=refunded")
    assert crashed == -signal.SIGKILL, harness.worker_output()
    assert await harness.run_worker() == 0, harness.worker_output()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.step, order.failure_reason) == (
        OrderStatus.FAILED,
        "refunded",
        "INJECTED_FAULT",
    )
    assert await harness.available("crash_ref") == Decimal("1000.00")
    await assert_ledger(harness.clients, "crash_ref")
    assert await last_event(harness, order.order_id, EventType.ORDER_FAILED) == (
        EventType.ORDER_FAILED,
        order.sequence,
    )


async def test_conditional_orders_survive_a_crash_after_each_of_their_writes(
    harness: Harness,
) -> None:
    """held (placed), completed (a stop sell fired), cancelled (a trailing stop), expired (a
    take-profit buy), released (a stop buy that gapped past its hold and what is left)."""
    user = "crash_cond"
    await harness.create_user(user, usd="300")
    await harness.add_asset("SOL", "100")
    await harness.give_asset(user, "SOL", "5")
    expiry = utc_now() + DUE_IN

    def conditional(kind: str, **fields: str) -> PlaceOrder:
        request = OrderCreate.model_validate(
            {"order_type": kind, "asset_id": "SOL", "quantity": "1", **fields}
        )
        return harness.factory.place_order(user, request)

    executed = conditional("STOP_SELL", stop_price="95")
    cancelled = conditional("TRAILING_STOP_SELL", trail_amount="10")
    expired = conditional("TAKE_PROFIT_BUY", stop_price="50", expires_at=expiry.isoformat())
    refused = conditional("STOP_BUY", stop_price="110", quantity="2")  # holds 231.00
    orders = (executed, cancelled, expired, refused)

    async def gap() -> None:
        await harness.send_prices(("SOL", "200"))  # 400.00 for the stop buy: 394.00 in all

    # Held: 50.00 for the take-profit buy, 231.00 for the stop buy.
    final = await crash_after_each_ending(harness, orders, "94", gap, ("281.00", "USD"))
    assert final[refused.payload.order_id].failure_reason == "INSUFFICIENT_BALANCE"
    assert await harness.available(user) == Decimal("394.00")  # 300 + 94
    sol = await get_asset_balance_dao(harness.clients).get_asset_balance(user, "SOL")
    assert (sol.available, sol.held) == (Decimal("4"), Decimal("0"))
    await assert_ledger(harness.clients, user)
    await assert_final_events(harness, list(final.values()))
