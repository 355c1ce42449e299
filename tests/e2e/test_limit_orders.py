"""Limit orders through real processes: holds, the matcher, execution, cancel, expiry."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_processor.bootstrap import (
    get_asset_balance_dao,
    get_asset_dao,
    get_balance_dao,
    get_user_dao,
)
from order_processor.domain.base import utc_now
from order_processor.domain.commands import ServiceName
from order_processor.domain.events import EventType
from order_processor.domain.orders import OrderStatus
from order_processor.domain.users import UserUpdate
from order_processor.messaging.producer import Producer
from tests.e2e.harness import AHEAD, DUE_IN, Harness
from tests.ledger import assert_ledger


async def test_holds_and_releases_are_exact_to_the_cent(harness: Harness) -> None:
    await harness.create_user("holder_1", usd="100")
    await harness.add_asset("ETH", "150")
    await harness.give_asset("holder_1", "ETH", "2")
    buy = harness.limit("holder_1", "buy", "ETH", "0.333", "100.01")  # 33.30333 -> 33.31
    sell = harness.limit("holder_1", "sell", "ETH", "1.5", "200")
    await harness.send(buy, sell)
    assert await harness.run_worker() == 0, harness.worker_output()

    balance = await get_balance_dao(harness.clients).get_balance("holder_1")
    eth = await get_asset_balance_dao(harness.clients).get_asset_balance("holder_1", "ETH")
    assert (balance.available, balance.held) == (Decimal("66.69"), Decimal("33.31"))
    assert (eth.available, eth.held) == (Decimal("0.5"), Decimal("1.5"))
    assert (await harness.order(buy.payload.order_id)).status is OrderStatus.QUEUED
    await assert_ledger(harness.clients, "holder_1")

    await harness.send(
        harness.factory.cancel("holder_1", buy.payload.order_id),
        harness.factory.cancel("holder_1", sell.payload.order_id),
    )
    assert await harness.run_worker() == 0, harness.worker_output()

    balance = await get_balance_dao(harness.clients).get_balance("holder_1")
    eth = await get_asset_balance_dao(harness.clients).get_asset_balance("holder_1", "ETH")
    assert (balance.available, balance.held) == (Decimal("100.00"), Decimal("0.00"))
    assert (eth.available, eth.held) == (Decimal("2"), Decimal("0"))
    assert (await harness.order(sell.payload.order_id)).status is OrderStatus.CANCELLED
    await assert_ledger(harness.clients, "holder_1")


async def test_a_price_path_triggers_exactly_the_orders_it_crosses(harness: Harness) -> None:
    await harness.create_user("path_user", usd="1000")
    await harness.add_asset("SOL", "105")
    await harness.give_asset("path_user", "SOL", "3")
    orders = {
        "buy100": harness.limit("path_user", "buy", "SOL", "1", "100"),
        "buy95": harness.limit("path_user", "buy", "SOL", "1", "95"),
        "buy90": harness.limit("path_user", "buy", "SOL", "1", "90"),
        "sell110": harness.limit("path_user", "sell", "SOL", "1", "110"),
        "sell120": harness.limit("path_user", "sell", "SOL", "1", "120"),
    }
    await harness.send(*orders.values())
    assert await harness.run_worker() == 0, harness.worker_output()

    async def status(name: str) -> tuple[OrderStatus, Decimal | None]:
        order = await harness.order(orders[name].payload.order_id)
        return order.status, order.price

    await harness.send_prices(("SOL", "97"))
    await harness.settle()
    assert await status("buy100") == (OrderStatus.COMPLETED, Decimal("97"))
    assert (await status("buy95"))[0] is OrderStatus.QUEUED

    await harness.send_prices(("SOL", "95"))  # exactly at the limit: triggers
    await harness.settle()
    assert await status("buy95") == (OrderStatus.COMPLETED, Decimal("95"))
    assert (await status("buy90"))[0] is OrderStatus.QUEUED

    await harness.send_prices(("SOL", "115"))
    await harness.settle()
    assert await status("sell110") == (OrderStatus.COMPLETED, Decimal("115"))
    assert (await status("sell120"))[0] is OrderStatus.QUEUED
    assert (await status("buy90"))[0] is OrderStatus.QUEUED

    # Bought at 97 and 95 (holds of 100 and 95 released: the difference stays available),
    # sold at 115; buy90 still holds 90.
    balance = await get_balance_dao(harness.clients).get_balance("path_user")
    assert (balance.available, balance.held) == (Decimal("833.00"), Decimal("90.00"))
    await assert_ledger(harness.clients, "path_user")


@pytest.mark.parametrize("first", ["cancel", "execute"])
async def test_a_cancel_racing_an_execution_ends_in_exactly_one(
    harness: Harness, first: str
) -> None:
    await harness.create_user("race_user", usd="500")
    await harness.add_asset("ADA", "2")
    buy = harness.limit("race_user", "buy", "ADA", "100", "1.5")
    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()
    cancel = harness.factory.cancel("race_user", buy.payload.order_id)
    if first == "cancel":
        await harness.send(cancel)
        await harness.send_prices(("ADA", "1.4"))
    else:
        await harness.send_prices(("ADA", "1.4"))
        assert await harness.run_worker(kind="limit-matcher") == 0
        await harness.send(cancel)
    await harness.settle()

    order = await harness.order(buy.payload.order_id)
    expected = OrderStatus.CANCELLED if first == "cancel" else OrderStatus.COMPLETED
    assert order.status is expected
    available = await harness.available("race_user")
    assert available == (Decimal("500.00") if first == "cancel" else Decimal("360.00"))
    await assert_ledger(harness.clients, "race_user")


async def test_expiry_follows_the_workers_clock_not_the_senders(harness: Harness) -> None:
    await harness.create_user("expiry_user", usd="100")
    await harness.add_asset("DOT", "10")
    soon = harness.limit("expiry_user", "buy", "DOT", "2", "5", expires_at=utc_now() + DUE_IN)
    later = harness.limit("expiry_user", "buy", "DOT", "2", "5")  # default: 30 days
    await harness.send(soon, later)
    assert await harness.run_worker() == 0, harness.worker_output()
    assert await harness.available("expiry_user") == Decimal("80.00")

    # A sweeper whose clock runs ahead sends ExpireOrder for the order due by then; the
    # worker's own clock says it is not due, so nothing expires.
    await harness.sweep_ahead()
    assert await harness.run_worker() == 0
    assert (await harness.order(soon.payload.order_id)).status is OrderStatus.QUEUED
    assert await harness.available("expiry_user") == Decimal("80.00")

    # Later by the worker's clock too (a sweep of another minute: another command id).
    await harness.sweep_ahead(AHEAD + timedelta(minutes=1))
    assert await harness.run_worker(ahead=AHEAD) == 0

    assert (await harness.order(soon.payload.order_id)).status is OrderStatus.EXPIRED
    later_order = await harness.order(later.payload.order_id)
    assert later_order.status is OrderStatus.QUEUED
    assert later_order.expires_at is not None
    assert later_order.expires_at - later_order.created_at == timedelta(days=30)
    assert await harness.available("expiry_user") == Decimal("90.00")
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.ORDER_EXPIRED for x in e)
    )
    assert [e.order_id for e in events if e.event_type is EventType.ORDER_EXPIRED] == [
        soon.payload.order_id
    ]
    await assert_ledger(harness.clients, "expiry_user")


async def test_a_triggered_order_past_its_expiry_expires_instead_of_filling(
    harness: Harness,
) -> None:
    await harness.create_user("late_user", usd="100")
    await harness.add_asset("DOT", "10")
    buy = harness.limit("late_user", "buy", "DOT", "2", "9", expires_at=utc_now() + DUE_IN)
    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()
    await harness.send_prices(("DOT", "8"))  # triggers it, but the worker finds it too late
    await harness.settle(ahead=AHEAD)

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.price) == (OrderStatus.EXPIRED, None)
    assert await harness.available("late_user") == Decimal("100.00")
    await assert_ledger(harness.clients, "late_user")


async def test_execution_rechecks_the_order_value_limit_at_the_market_price(
    harness: Harness,
) -> None:
    await harness.create_user("value_user", usd="10")
    await harness.add_asset("BTC", "0.5")
    await harness.give_asset("value_user", "BTC", "0.19")
    sell = harness.limit("value_user", "sell", "BTC", "0.19", "1")  # worth 0.19 when placed
    await harness.send(sell)
    assert await harness.run_worker() == 0, harness.worker_output()
    await harness.send_prices(("BTC", "100000"))  # 19,000 USD: over the 10,000 limit
    await harness.settle()

    order = await harness.order(sell.payload.order_id)
    assert (order.status, order.failure_reason, order.step) == (
        OrderStatus.FAILED,
        "ORDER_VALUE_LIMIT",
        "released",
    )
    btc = await get_asset_balance_dao(harness.clients).get_asset_balance("value_user", "BTC")
    assert (btc.available, btc.held) == (Decimal("0.19"), Decimal("0"))
    assert await harness.available("value_user") == Decimal("10.00")
    await assert_ledger(harness.clients, "value_user")


async def test_a_disabled_users_waiting_order_is_not_filled(harness: Harness) -> None:
    await harness.create_user("gone_user", usd="100")
    await harness.add_asset("DOT", "10")
    buy = harness.limit("gone_user", "buy", "DOT", "2", "9")
    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()
    await get_user_dao(harness.clients).update_user("gone_user", UserUpdate(is_active=False))
    await harness.send_prices(("DOT", "8"))
    await harness.settle()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "USER_INACTIVE")
    balance = await get_balance_dao(harness.clients).get_balance("gone_user")
    assert (balance.available, balance.held) == (Decimal("100.00"), Decimal("0.00"))
    await assert_ledger(harness.clients, "gone_user")


async def test_a_price_dated_in_the_future_cannot_freeze_the_market(harness: Harness) -> None:
    await harness.add_asset("XRP", "2")
    far_ahead = harness.factory.update_price("XRP", "999").model_copy(
        update={"issued_at": datetime(9999, 12, 31, tzinfo=UTC)}
    )
    frozen = harness.signed(ServiceName.PRICE_FEED, far_ahead)  # the feed's own signature
    url = await harness.clients.queue_url(harness.settings.resources().price_updates_queue.name)
    await Producer(harness.clients.sqs, url, fifo=False).send(frozen)
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()
    await harness.send_prices(("XRP", "3"))
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()

    assert (await get_asset_dao(harness.clients).get_asset("XRP")).price == Decimal("3")
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.COMMAND_REJECTED for x in e)
    )
    rejected = [e for e in events if e.event_type is EventType.COMMAND_REJECTED]
    assert [(e.data["command_id"], e.data["reason"]) for e in rejected] == [
        (frozen.command_id, "FUTURE_TIMESTAMP")
    ]


async def test_a_lifted_price_update_replayed_later_never_restores_its_price(
    harness: Harness,
) -> None:
    """The attack: copy `price RPL 100` off the queue, let `price RPL 80` land, then send
    the copy again, once as it was and once re-dated to now. Neither moves the price: the
    re-dated copy no longer matches its token, the original is older than what is stored.
    A sell placed next settles at 80, the last price the feed published."""
    await harness.create_user("replay_u")
    await harness.add_asset("RPL", "90")
    await harness.give_asset("replay_u", "RPL", "1")
    (first,) = await harness.send_prices(("RPL", "100"))
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()
    await harness.send_prices(("RPL", "80"))
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()

    redated = first.model_copy(update={"issued_at": utc_now()})
    url = await harness.clients.queue_url(harness.settings.resources().price_updates_queue.name)
    await Producer(harness.clients.sqs, url, fifo=False).send_batch([first, redated])
    assert await harness.run_worker(kind="limit-matcher") == 0, harness.worker_output()

    assert (await get_asset_dao(harness.clients).get_asset("RPL")).price == Decimal("80")
    sell = harness.market("replay_u", "sell", "RPL", "1")
    await harness.send(sell)
    assert await harness.run_worker() == 0, harness.worker_output()
    order = await harness.order(sell.payload.order_id)
    assert (order.status, order.price) == (OrderStatus.COMPLETED, Decimal("80"))
    assert await harness.available("replay_u") == Decimal("80.00")
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.COMMAND_REJECTED for x in e)
    )
    assert [
        (e.data["command_id"], e.data["reason"])
        for e in events
        if e.event_type is EventType.COMMAND_REJECTED
    ] == [(None, "UNAUTHORIZED")]  # the token vouches for no id of a message it did not sign


async def test_a_matcher_crash_between_query_and_send_loses_nothing_and_doubles_nothing(
    harness: Harness,
) -> None:
    await harness.create_user("matcher_u", usd="1000")
    await harness.add_asset("AVAX", "30")
    buy = harness.limit("matcher_u", "buy", "AVAX", "10", "25")
    await harness.send(buy)
    assert await harness.run_worker() == 0, harness.worker_output()
    await harness.send_prices(("AVAX", "24"), ("AVAX", "24"))  # and a repeated update

    crashed = await harness.run_worker(kind="limit-matcher", fault="crash-after=matched")
    assert crashed == -signal.SIGKILL
    await harness.settle()

    order = await harness.order(buy.payload.order_id)
    assert (order.status, order.price, order.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("24"),
        Decimal("240.00"),
    )
    assert await harness.available("matcher_u") == Decimal("760.00")
    await assert_ledger(harness.clients, "matcher_u")


async def test_held_funds_are_not_available_to_withdrawals_or_market_orders(
    harness: Harness,
) -> None:
    await harness.create_user("held_user", usd="100")
    await harness.add_asset("LINK", "20")
    await harness.send(harness.limit("held_user", "buy", "LINK", "4", "19"))  # holds 76
    assert await harness.run_worker() == 0, harness.worker_output()
    withdraw = harness.factory.withdraw("held_user", "50")
    market = harness.market("held_user", "buy", "LINK", "1.5")  # 30 > 24 available
    small = harness.factory.withdraw("held_user", "20")
    await harness.send(withdraw, market, small)
    assert await harness.run_worker() == 0, harness.worker_output()

    balance = await get_balance_dao(harness.clients).get_balance("held_user")
    assert (balance.available, balance.held) == (Decimal("4.00"), Decimal("76.00"))
    failed = await harness.order(market.payload.order_id)
    assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "INSUFFICIENT_BALANCE")
    events = await harness.collect_events(
        lambda e: any(x.event_type is EventType.COMMAND_REJECTED for x in e)
    )
    rejected = [e.data for e in events if e.event_type is EventType.COMMAND_REJECTED]
    assert [(r["command_id"], r["reason"]) for r in rejected] == [
        (withdraw.command_id, "INSUFFICIENT_BALANCE")
    ]
    await assert_ledger(harness.clients, "held_user")
