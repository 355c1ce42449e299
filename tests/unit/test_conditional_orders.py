"""Stop, take-profit and trailing stop orders over in-memory ports: when each triggers,
how a trailing stop follows the market, what each holds and what execution settles."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_processor.domain.commands import CancelOrder, ExecuteOrder
from order_processor.domain.orders import Order, OrderStatus, OrderType
from order_processor.domain.triggers import trail_stop, trailed, triggered
from order_processor.exceptions import CommandRejected
from order_processor.saga.engine import Saga
from order_processor.store.items import index_attributes
from tests.builders import an_order
from tests.unit.fakes import MemoryEvents, MemoryLedger
from tests.unit.test_saga import LIMITS, NOW, USER, place, reference, world

T = OrderType


def order(kind: OrderType, **fields: Any) -> Order:
    return an_order(kind, username=USER, **fields)


@pytest.mark.parametrize(
    ("kind", "stop", "fires", "holds"),
    [
        (T.STOP_SELL, "100", ["100", "99.99", "1"], ["100.01", "150"]),
        (T.TAKE_PROFIT_BUY, "100", ["100", "99.99"], ["100.01"]),
        (T.STOP_BUY, "100", ["100", "100.01", "999"], ["99.99", "1"]),
        (T.TAKE_PROFIT_SELL, "100", ["100", "120"], ["99.99"]),
    ],
)
def test_a_stop_or_take_profit_triggers_at_its_price_in_its_direction_only(
    kind: OrderType, stop: str, fires: list[str], holds: list[str]
) -> None:
    waiting = order(kind, stop_price=stop)

    assert all(triggered(waiting, Decimal(p)) for p in fires)
    assert not any(triggered(waiting, Decimal(p)) for p in holds)


prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2)


@settings(max_examples=300, deadline=None)
@given(start=prices, seen=st.lists(prices, max_size=30), trail=st.sampled_from(["5", "250"]))
def test_a_trailing_sell_keeps_the_highest_price_seen_whatever_the_order_gaps_or_repeats(
    start: Decimal, seen: list[Decimal], trail: str
) -> None:
    trailing = order(T.TRAILING_STOP_SELL, trail_amount=trail).evolve(
        best_price=start, stop_price=trail_stop(T.TRAILING_STOP_SELL, start, Decimal(trail), None)
    )
    stops: list[Decimal] = [Decimal(str(trailing.stop_price))]
    for price in [*seen, *reversed(seen), *seen]:  # repeats, and the same prices late
        moved = trailed(trailing, price)
        if moved is not None:
            trailing = trailing.evolve(best_price=moved[0], stop_price=moved[1])
        stops.append(Decimal(str(trailing.stop_price)))

    best = max([start, *seen])
    assert trailing.best_price == best
    assert trailing.stop_price == max(best - Decimal(trail), Decimal("0.00000001"))
    assert stops == sorted(stops)  # the stop only ever rose


@settings(max_examples=300, deadline=None)
@given(start=prices, seen=st.lists(prices, max_size=30), percent=st.sampled_from(["1", "12.5"]))
def test_a_trailing_buy_keeps_the_lowest_price_seen_and_its_stop_only_falls(
    start: Decimal, seen: list[Decimal], percent: str
) -> None:
    kind = T.TRAILING_STOP_BUY
    trailing = order(kind, trail_percent=percent).evolve(
        best_price=start, stop_price=trail_stop(kind, start, None, Decimal(percent))
    )
    stops: list[Decimal] = [Decimal(str(trailing.stop_price))]
    for price in [*seen, *seen]:
        moved = trailed(trailing, price)
        if moved is not None:
            trailing = trailing.evolve(best_price=moved[0], stop_price=moved[1])
        stops.append(Decimal(str(trailing.stop_price)))

    lowest = min([start, *seen])
    assert trailing.best_price == lowest
    assert trailing.stop_price == trail_stop(kind, lowest, None, Decimal(percent))
    assert trailing.stop_price >= lowest * (1 + Decimal(percent) / 100)
    assert stops == sorted(stops, reverse=True)


def test_a_trailing_sell_triggers_when_the_price_retraces_by_the_trail() -> None:
    trailing = order(T.TRAILING_STOP_SELL, trail_percent="5")
    for price in ("100", "120", "110"):
        moved = trailed(trailing, Decimal(price))
        if moved:
            trailing = trailing.evolve(best_price=moved[0], stop_price=moved[1])

    assert (trailing.best_price, trailing.stop_price) == (Decimal("120"), Decimal("114"))
    assert not triggered(trailing, Decimal("114.01"))
    assert triggered(trailing, Decimal("114"))


# The saga


def with_price(ledger: MemoryLedger, price: str) -> None:
    ledger.assets["BTC"] = ledger.assets["BTC"].model_copy(update={"price": Decimal(price)})


async def placed(
    kind: OrderType, usd: str = "1000", btc: str = "0", price: str = "100", **fields: Any
) -> tuple[Saga, MemoryLedger, MemoryEvents]:
    saga, ledger, events = world(usd=usd, btc=btc, price=price)
    await saga.handle(place(kind, "2", **fields))
    return saga, ledger, events


async def test_a_stop_loss_sell_holds_the_quantity_and_sells_at_the_market_once_triggered() -> None:
    saga, ledger, _events = await placed(T.STOP_SELL, btc="3", stop_price="90")
    assert ledger.orders["o-1"].status is OrderStatus.QUEUED
    assert ledger.holding(USER, "BTC") == (Decimal("1"), Decimal("2"))

    with_price(ledger, "91")
    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))
    assert ledger.orders["o-1"].status is OrderStatus.QUEUED  # not yet: 91 > 90

    with_price(ledger, "88.5")
    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    sold = ledger.orders["o-1"]
    assert (sold.status, sold.price, sold.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("88.5"),
        Decimal("177.00"),
    )
    assert ledger.holding(USER, "BTC") == (Decimal("1"), Decimal("0"))
    assert ledger.available(USER) == (Decimal("1177.00"), Decimal("0.00"))
    assert ledger.records_of("o-1") == ["HOLD", "ORDER_SALE", "RELEASE", "SELL"]


async def test_a_stop_buy_holds_its_stop_plus_the_slippage_allowance() -> None:
    _saga, ledger, _ = await placed(T.STOP_BUY, stop_price="110")

    held = ledger.orders["o-1"]
    assert held.hold_price == Decimal("115.5")  # 110 + 5 %
    assert ledger.available(USER) == (Decimal("769.00"), Decimal("231.00"))


async def test_a_stop_buy_that_ran_past_its_hold_is_topped_up_from_what_is_available() -> None:
    saga, ledger, _ = await placed(T.STOP_BUY, stop_price="110")
    with_price(ledger, "130")  # past 115.50: costs 260.00, held 231.00

    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    bought = ledger.orders["o-1"]
    assert (bought.status, bought.total_amount) == (OrderStatus.COMPLETED, Decimal("260.00"))
    assert ledger.available(USER) == (Decimal("740.00"), Decimal("0.00"))
    assert ledger.holding(USER, "BTC")[0] == Decimal("2")


async def test_a_stop_buy_the_user_cannot_top_up_fails_and_releases_its_hold() -> None:
    saga, ledger, _ = await placed(T.STOP_BUY, usd="240", stop_price="110")
    with_price(ledger, "130")  # 260.00 needed, 240.00 in all

    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    failed = ledger.orders["o-1"]
    assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "INSUFFICIENT_BALANCE")
    assert ledger.available(USER) == (Decimal("240.00"), Decimal("0.00"))
    assert ledger.records_of("o-1") == ["ORDER_HOLD", "ORDER_RELEASE"]


async def test_a_take_profit_buy_holds_its_target_and_never_pays_more() -> None:
    saga, ledger, _ = await placed(T.TAKE_PROFIT_BUY, stop_price="80")
    assert ledger.available(USER) == (Decimal("840.00"), Decimal("160.00"))

    with_price(ledger, "79")
    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    assert ledger.orders["o-1"].total_amount == Decimal("158.00")
    assert ledger.available(USER) == (Decimal("842.00"), Decimal("0.00"))


async def test_a_take_profit_sell_already_reached_executes_in_the_write_that_places_it() -> None:
    _saga, ledger, events = await placed(T.TAKE_PROFIT_SELL, btc="2", stop_price="95")

    assert ledger.orders["o-1"].status is OrderStatus.COMPLETED
    assert len(ledger.writes) == 1
    assert [kind for kind, _ in events.of("o-1")][-1] == "order.completed"


async def test_a_trailing_stop_starts_from_the_market_price_at_placement() -> None:
    _, ledger, _ = await placed(T.TRAILING_STOP_SELL, btc="2", trail_amount="7.5")

    trailing = ledger.orders["o-1"]
    assert (trailing.best_price, trailing.stop_price) == (Decimal("100"), Decimal("92.5"))
    assert trailing.status is OrderStatus.QUEUED


async def test_a_trailing_stop_executes_only_below_its_moved_stop() -> None:
    saga, ledger, _ = await placed(T.TRAILING_STOP_SELL, btc="2", trail_amount="10")
    stored = ledger.orders["o-1"]
    ledger.orders["o-1"] = stored.evolve(best_price=Decimal("150"), stop_price=Decimal("140"))
    with_price(ledger, "141")
    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))
    assert ledger.orders["o-1"].status is OrderStatus.QUEUED

    with_price(ledger, "139")
    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    assert ledger.orders["o-1"].total_amount == Decimal("278.00")


async def test_a_waiting_stop_is_cancelled_with_its_hold_released() -> None:
    saga, ledger, _ = await placed(T.STOP_BUY, stop_price="110")

    await saga.handle(reference(CancelOrder))

    assert ledger.orders["o-1"].status is OrderStatus.CANCELLED
    assert ledger.available(USER) == (Decimal("1000.00"), Decimal("0.00"))


async def test_a_redelivered_stop_with_another_trigger_is_a_conflicting_duplicate() -> None:
    saga, ledger, _events = await placed(T.STOP_SELL, btc="2", stop_price="90")

    with pytest.raises(CommandRejected, match="different request"):
        await saga.handle(place(T.STOP_SELL, "2", stop_price="80"))
    assert ledger.orders["o-1"].stop_price == Decimal("90")


async def test_two_executions_of_one_triggered_stop_fill_it_once() -> None:
    saga, ledger, _events = await placed(T.STOP_SELL, btc="2", stop_price="90")
    with_price(ledger, "80")

    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))
    await saga.handle(reference(ExecuteOrder, asset_id="BTC", order_id="o-1"))  # a rematch's

    assert ledger.records_of("o-1") == ["HOLD", "ORDER_SALE", "RELEASE", "SELL"]
    assert ledger.available(USER)[0] == Decimal("1160.00")


async def test_a_cancel_after_the_trigger_is_refused_and_an_execution_after_it_fills_nothing() -> (
    None
):
    saga, ledger, _ = await placed(T.STOP_BUY, stop_price="110", order_id="o-1")
    with_price(ledger, "111")
    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))
    with pytest.raises(CommandRejected, match="only a QUEUED order"):
        await saga.handle(reference(CancelOrder))

    await saga.handle(place(T.STOP_BUY, "2", stop_price="120", order_id="o-2"))
    await saga.handle(reference(CancelOrder, order_id="o-2"))
    with_price(ledger, "125")
    await saga.handle(reference(ExecuteOrder, order_id="o-2", asset_id="BTC"))

    assert ledger.orders["o-1"].status is OrderStatus.COMPLETED
    assert ledger.orders["o-2"].status is OrderStatus.CANCELLED
    assert ledger.records_of("o-2") == ["ORDER_HOLD", "ORDER_RELEASE"]


async def test_a_stop_past_its_expiry_expires_instead_of_firing() -> None:
    _saga, ledger, _ = await placed(
        T.STOP_SELL, btc="2", stop_price="90", expires_at=NOW + timedelta(minutes=5)
    )
    with_price(ledger, "80")
    later = Saga(ledger, MemoryEvents(), LIMITS, clock=lambda: NOW + timedelta(minutes=6))

    await later.handle(reference(ExecuteOrder, asset_id="BTC"))

    assert ledger.orders["o-1"].status is OrderStatus.EXPIRED
    assert ledger.holding(USER, "BTC") == (Decimal("2"), Decimal("0"))


def test_only_a_waiting_order_is_in_the_stop_indexes_and_the_expiry_index() -> None:
    waiting = order(T.TRAILING_STOP_SELL, trail_amount="5", expires_at=NOW).evolve(
        status=OrderStatus.QUEUED, stop_price=Decimal("95"), best_price=Decimal("100")
    )
    done = waiting.evolve(status=OrderStatus.COMPLETED)

    assert index_attributes(waiting) | {"created_key": ""} == {
        "created_key": "",
        "stop_key": "BTC#FALL",
        "trail_key": "BTC#SELL",
        "expiry_shard": "EXPIRING",
        # a fall reaches it at its stop (it sells), a rise at its best (its trail moves)
        "fall_key": "BTC",
        "fall_price": Decimal("95"),
        "rise_key": "BTC",
        "rise_price": Decimal("100"),
    }
    assert set(index_attributes(done)) == {"created_key"}
    assert (
        index_attributes(order(T.STOP_BUY, stop_price="1").evolve(status=OrderStatus.QUEUED))[
            "stop_key"
        ]
        == "BTC#RISE"
    )
