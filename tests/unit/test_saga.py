"""The saga over in-memory ports: each command's decisions, the records and events a user
would see, the refusals and what answers them. No emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from order_processor.domain.assets import Asset
from order_processor.domain.commands import (
    CancelOrder,
    CommandType,
    Deposit,
    ExecuteOrder,
    ExecutePayload,
    ExpireOrder,
    FundsPayload,
    OrderReference,
    PlaceOrder,
    PlaceOrderPayload,
    PricePayload,
    ResumeOrder,
    UpdatePrice,
    Withdraw,
)
from order_processor.domain.orders import Order, OrderStatus, OrderType
from order_processor.domain.ports import Snapshot
from order_processor.domain.steps import Step
from order_processor.domain.users import User
from order_processor.exceptions import CommandRejected, FenceConflictException, Reason
from order_processor.saga.decision import Limits
from order_processor.saga.engine import Saga
from order_processor.saga.faults import Faults
from order_processor.saga.routes import ROUTES
from tests.unit.fakes import MemoryEvents, MemoryLedger

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
USER = "alice_01"
LIMITS = Limits(Decimal("10000.00"), Decimal("10000.00"), Decimal("5000.00"))


def world(
    usd: str = "1000", btc: str = "0", price: str = "100"
) -> tuple[Saga, MemoryLedger, MemoryEvents]:
    ledger, events = MemoryLedger(), MemoryEvents()
    ledger.users[USER] = User(
        username=USER, email="a@example.com", first_name="A", last_name="B", password_hash="x"
    )
    ledger.cash[USER, "USD"] = (Decimal(usd).quantize(Decimal("0.01")), Decimal("0.00"))
    ledger.holdings[(USER, "BTC")] = (Decimal(btc), Decimal(0))
    ledger.assets["BTC"] = Asset(asset_id="BTC", name="Bitcoin", price=Decimal(price))
    saga = Saga(ledger, events, LIMITS, clock=lambda: NOW)
    return saga, ledger, events


def place(kind: OrderType, quantity: str, limit: str | None = None, **fields: Any) -> PlaceOrder:
    payload = PlaceOrderPayload(
        order_id=fields.pop("order_id", "o-1"),
        order_type=kind,
        asset_id="BTC",
        quantity=quantity,
        limit_price=limit,
        **fields,
    )
    return PlaceOrder(command_id="c-1", username=USER, auth="t", payload=payload)


def reference(kind: type[Any], order_id: str = "o-1", **payload: Any) -> Any:
    body = ExecutePayload if kind is ExecuteOrder else OrderReference
    return kind(
        command_id="r-1", username=USER, auth="t", payload=body(order_id=order_id, **payload)
    )


# Market orders


async def test_a_market_buy_is_accepted_debited_and_credited_in_one_write() -> None:
    saga, ledger, events = world()

    await saga.handle(place(OrderType.MARKET_BUY, "2.5"))

    order = ledger.orders["o-1"]
    assert (order.status, order.price, order.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("100"),
        Decimal("250.00"),
    )
    assert ledger.available(USER) == (Decimal("750.00"), Decimal("0.00"))
    assert ledger.holding(USER, "BTC") == (Decimal("2.5"), Decimal(0))
    assert ledger.records_of("o-1") == ["BUY", "ORDER_PAYMENT"]
    assert (len(ledger.writes), ledger.reads) == (1, 1)
    assert events.of("o-1") == [
        ("order.accepted", 1),
        ("order.processing", 2),
        ("order.completed", 3),
    ]


async def test_an_order_carries_its_command_issued_at_into_its_final_event() -> None:
    """The analytics' end-to-end latency runs from it; a clock ahead of the worker's (the
    admission allows some skew) is taken as the worker's."""
    saga, ledger, events = world()
    issued = NOW - timedelta(milliseconds=250)
    command = place(OrderType.MARKET_BUY, "1").model_copy(update={"issued_at": issued})
    ahead = place(OrderType.MARKET_BUY, "1", order_id="o-2").model_copy(
        update={"issued_at": NOW + timedelta(seconds=20)}
    )

    await saga.handle(command)
    await saga.handle(ahead)

    assert ledger.orders["o-1"].issued_at == issued
    assert ledger.orders["o-2"].issued_at == NOW
    completed = [e for e in events.published if e.event_type.value == "order.completed"]
    assert [datetime.fromisoformat(e.data["issued_at"]) for e in completed] == [issued, NOW]


async def test_a_market_sell_gives_the_asset_and_receives_the_proceeds_rounded_down() -> None:
    saga, ledger, _ = world(btc="1", price="33.333")

    await saga.handle(place(OrderType.MARKET_SELL, "0.3"))  # 9.9999 -> 9.99

    assert ledger.orders["o-1"].total_amount == Decimal("9.99")
    assert ledger.available(USER) == (Decimal("1009.99"), Decimal("0.00"))
    assert ledger.holding(USER, "BTC") == (Decimal("0.7"), Decimal(0))
    assert ledger.records_of("o-1") == ["ORDER_SALE", "SELL"]


async def test_a_buy_beyond_the_balance_fails_and_moves_nothing() -> None:
    saga, ledger, events = world(usd="50")

    await saga.handle(place(OrderType.MARKET_BUY, "1"))

    order = ledger.orders["o-1"]
    assert (order.status, order.failure_reason, order.sequence) == (
        OrderStatus.FAILED,
        "INSUFFICIENT_BALANCE",
        2,
    )
    assert ledger.available(USER) == (Decimal("50.00"), Decimal("0.00"))
    assert ledger.records_of("o-1") == []
    assert events.of("o-1") == [("order.accepted", 1), ("order.failed", 2)]


async def test_a_sell_of_more_than_is_held_fails_insufficient_asset_balance() -> None:
    saga, ledger, _ = world(btc="0.1")

    await saga.handle(place(OrderType.MARKET_SELL, "1"))

    assert ledger.orders["o-1"].failure_reason == "INSUFFICIENT_ASSET_BALANCE"
    assert ledger.holding(USER, "BTC") == (Decimal("0.1"), Decimal(0))


@pytest.mark.parametrize(
    ("kind", "quantity", "reason"),
    [
        (OrderType.MARKET_BUY, "101", "ORDER_VALUE_LIMIT"),
        (OrderType.MARKET_SELL, "0.00001", "ORDER_TOO_SMALL"),  # proceeds round to 0.00
    ],
)
async def test_an_order_priced_out_fails_without_moving_money(
    kind: OrderType, quantity: str, reason: str
) -> None:
    saga, ledger, _ = world(usd="20000", btc="1")

    await saga.handle(place(kind, quantity))

    assert (ledger.orders["o-1"].status, ledger.orders["o-1"].failure_reason) == (
        OrderStatus.FAILED,
        reason,
    )
    assert ledger.available(USER) == (Decimal("20000.00"), Decimal("0.00"))


async def test_a_redelivered_order_publishes_its_stored_state_and_writes_nothing() -> None:
    saga, ledger, events = world()
    await saga.handle(place(OrderType.MARKET_BUY, "1"))
    events.published.clear()

    await saga.handle(place(OrderType.MARKET_BUY, "1"))

    assert len(ledger.writes) == 1
    assert events.of("o-1") == [("order.completed", 3)]
    assert ledger.available(USER) == (Decimal("900.00"), Decimal("0.00"))


async def test_the_same_order_id_with_another_request_is_rejected_and_never_executed() -> None:
    saga, ledger, _ = world()
    await saga.handle(place(OrderType.MARKET_BUY, "1"))

    with pytest.raises(CommandRejected) as rejected:
        await saga.handle(place(OrderType.MARKET_BUY, "2"))

    assert rejected.value.reason == "CONFLICTING_DUPLICATE"
    assert ledger.available(USER) == (Decimal("900.00"), Decimal("0.00"))


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("no user", "UNKNOWN_USER"),
        ("disabled", "USER_INACTIVE"),
        ("no asset", "UNKNOWN_ASSET"),
        ("halted", "ASSET_NOT_TRADABLE"),
        ("precision", "INVALID_QUANTITY"),
    ],
)
async def test_what_makes_a_command_wrong_is_rejected_and_stores_nothing(
    setup: str, reason: str
) -> None:
    saga, ledger, _ = world()
    quantity = "1"
    if setup == "no user":
        del ledger.users[USER]
    elif setup == "disabled":
        ledger.users[USER] = ledger.users[USER].model_copy(update={"is_active": False})
    elif setup == "no asset":
        del ledger.assets["BTC"]
    elif setup == "halted":
        ledger.assets["BTC"] = ledger.assets["BTC"].model_copy(update={"is_active": False})
    else:
        quantity = "0.000000001"

    with pytest.raises(CommandRejected) as rejected:
        await saga.handle(place(OrderType.MARKET_BUY, quantity))

    assert rejected.value.reason == reason
    assert ledger.orders == {}


async def test_a_write_refused_because_another_writer_came_first_is_decided_again() -> None:
    saga, ledger, _ = world()
    ledger.interfere.append(USER)  # the fence moves between the first read and its write

    await saga.handle(place(OrderType.MARKET_BUY, "1"))

    assert ledger.orders["o-1"].status is OrderStatus.COMPLETED
    assert (ledger.reads, len(ledger.writes)) == (2, 1)


async def test_a_user_whose_books_keep_moving_is_handed_back_after_a_few_attempts() -> None:
    saga, ledger, _ = world()
    ledger.interfere.extend([USER] * 20)

    with pytest.raises(FenceConflictException):
        await saga.handle(place(OrderType.MARKET_BUY, "1"))

    assert ledger.orders == {}


async def test_a_permanent_failure_before_the_write_fails_the_order_without_moving_money() -> None:
    saga, ledger, events = world()
    saga = Saga(ledger, events, LIMITS, clock=lambda: NOW, faults=Faults(fail_step=Step.COMPLETED))

    await saga.handle(place(OrderType.MARKET_BUY, "1"))

    assert ledger.orders["o-1"].failure_reason == "INJECTED_FAULT"
    assert ledger.available(USER) == (Decimal("1000.00"), Decimal("0.00"))


# Limit orders


async def test_a_limit_buy_holds_the_most_it_can_cost_rounded_up() -> None:
    saga, ledger, events = world(price="120")

    await saga.handle(place(OrderType.LIMIT_BUY, "0.333", "100.01"))  # 33.30333 -> 33.31

    order = ledger.orders["o-1"]
    assert order.status is OrderStatus.QUEUED
    assert order.expires_at == NOW + timedelta(days=30)
    assert ledger.available(USER) == (Decimal("966.69"), Decimal("33.31"))
    assert events.of("o-1") == [("order.accepted", 1), ("order.queued", 2)]


async def test_a_marketable_limit_order_executes_in_the_write_that_places_it() -> None:
    saga, ledger, events = world(price="95")

    await saga.handle(place(OrderType.LIMIT_BUY, "2", "100"))

    order = ledger.orders["o-1"]
    assert (order.status, order.price, order.total_amount) == (
        OrderStatus.COMPLETED,
        Decimal("95"),
        Decimal("190.00"),
    )
    assert ledger.available(USER) == (Decimal("810.00"), Decimal("0.00"))  # the difference stays
    assert ledger.records_of("o-1") == ["BUY", "ORDER_HOLD", "ORDER_PAYMENT", "ORDER_RELEASE"]
    assert len(ledger.writes) == 1
    assert [kind for kind, _ in events.of("o-1")] == [
        "order.accepted",
        "order.queued",
        "order.processing",
        "order.completed",
    ]


async def queued_buy(price: str = "120", **fields: Any) -> tuple[Saga, MemoryLedger, MemoryEvents]:
    saga, ledger, events = world(price=price)
    await saga.handle(place(OrderType.LIMIT_BUY, "2", "100", **fields))
    assert ledger.orders["o-1"].status is OrderStatus.QUEUED
    events.published.clear()
    return saga, ledger, events


async def test_execution_pays_the_market_price_and_keeps_the_difference_available() -> None:
    saga, ledger, events = await queued_buy()
    ledger.assets["BTC"] = ledger.assets["BTC"].model_copy(update={"price": Decimal("97")})

    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    assert ledger.orders["o-1"].total_amount == Decimal("194.00")
    assert ledger.available(USER) == (Decimal("806.00"), Decimal("0.00"))
    assert events.of("o-1") == [("order.processing", 3), ("order.completed", 4)]


async def test_an_execution_the_price_no_longer_triggers_leaves_the_order_queued() -> None:
    saga, ledger, events = await queued_buy()

    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    assert ledger.orders["o-1"].status is OrderStatus.QUEUED
    assert events.published == []


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ("expired", OrderStatus.EXPIRED, None),
        ("disabled", OrderStatus.FAILED, "USER_INACTIVE"),
        ("limit lowered", OrderStatus.FAILED, "ORDER_VALUE_LIMIT"),
    ],
)
async def test_execution_rechecks_what_placing_checked_and_releases_the_hold(
    change: str, status: OrderStatus, reason: str | None
) -> None:
    saga, ledger, _ = await queued_buy(expires_at=NOW + timedelta(minutes=5))
    ledger.assets["BTC"] = ledger.assets["BTC"].model_copy(update={"price": Decimal("90")})
    if change == "expired":
        saga = Saga(ledger, saga.events, LIMITS, clock=lambda: NOW + timedelta(minutes=6))
    elif change == "disabled":
        ledger.users[USER] = ledger.users[USER].model_copy(update={"is_active": False})
    else:
        saga = Saga(
            ledger,
            saga.events,
            Limits(Decimal(100), LIMITS.daily_deposit, LIMITS.daily_withdraw),
            clock=lambda: NOW,
        )

    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    order = ledger.orders["o-1"]
    assert (order.status, order.failure_reason) == (status, reason)
    assert ledger.available(USER) == (Decimal("1000.00"), Decimal("0.00"))
    assert ledger.records_of("o-1") == ["ORDER_HOLD", "ORDER_RELEASE"]


async def test_cancel_releases_the_hold_and_a_second_cancel_answers_the_same() -> None:
    saga, ledger, events = await queued_buy()

    await saga.handle(reference(CancelOrder))
    await saga.handle(reference(CancelOrder))

    assert ledger.orders["o-1"].status is OrderStatus.CANCELLED
    assert ledger.available(USER) == (Decimal("1000.00"), Decimal("0.00"))
    assert len(ledger.writes) == 2  # the placing and the cancel
    assert events.of("o-1") == [("order.cancelled", 3), ("order.cancelled", 3)]


async def test_a_completed_order_cannot_be_cancelled() -> None:
    saga, _, _ = world()
    await saga.handle(place(OrderType.MARKET_BUY, "1"))

    with pytest.raises(CommandRejected) as rejected:
        await saga.handle(reference(CancelOrder))

    assert rejected.value.reason == "ORDER_NOT_CANCELLABLE"


async def test_another_users_order_is_not_found() -> None:
    saga, ledger, _ = await queued_buy()
    cancel = CancelOrder(
        command_id="x", username="mallory_1", auth="t", payload=OrderReference(order_id="o-1")
    )

    with pytest.raises(CommandRejected) as rejected:
        await saga.handle(cancel)

    assert rejected.value.reason == "ORDER_NOT_FOUND"
    assert ledger.orders["o-1"].status is OrderStatus.QUEUED


async def test_expiry_follows_the_workers_clock_not_the_senders() -> None:
    saga, ledger, events = await queued_buy(expires_at=NOW + timedelta(hours=1))

    await saga.handle(reference(ExpireOrder))  # not due by the worker's clock
    before = ledger.orders["o-1"].status

    later = Saga(ledger, events, LIMITS, clock=lambda: NOW + timedelta(hours=2))
    await later.handle(reference(ExpireOrder))

    assert (before, ledger.orders["o-1"].status) == (OrderStatus.QUEUED, OrderStatus.EXPIRED)
    assert ledger.available(USER) == (Decimal("1000.00"), Decimal("0.00"))


# Orders a v1 worker left mid-saga


def stranded(
    ledger: MemoryLedger, status: OrderStatus, kind: OrderType = OrderType.MARKET_BUY
) -> Order:
    order = Order(
        order_id="o-1",
        username=USER,
        order_type=kind,
        asset_id="BTC",
        quantity=Decimal("1"),
        limit_price=Decimal("150") if kind.is_limit else None,
        status=status,
        step="accepted" if status is OrderStatus.PENDING else "debited",
        sequence=1 if status is OrderStatus.PENDING else 2,
        price=Decimal("100") if status is OrderStatus.PROCESSING else None,
        total_amount=Decimal("100.00") if status is OrderStatus.PROCESSING else None,
        created_at=NOW,
        updated_at=NOW,
    )
    ledger.orders[order.order_id] = order
    if status is OrderStatus.PROCESSING:  # the payment v1 committed
        ledger.cash[USER, "USD"] = (Decimal("900.00"), Decimal("0.00"))
    return order


@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.PROCESSING])
async def test_the_recovery_job_finishes_an_order_left_mid_saga(status: OrderStatus) -> None:
    saga, ledger, events = world()
    stranded(ledger, status)

    await saga.handle(reference(ResumeOrder))

    assert ledger.orders["o-1"].status is OrderStatus.COMPLETED
    assert ledger.available(USER) == (Decimal("900.00"), Decimal("0.00"))
    assert ledger.holding(USER, "BTC") == (Decimal("1"), Decimal(0))
    assert events.published[0].status == status.value  # the skipped event, first


async def test_a_credit_that_fails_for_good_refunds_the_debit() -> None:
    saga, ledger, events = world()
    stranded(ledger, OrderStatus.PROCESSING)
    saga = Saga(ledger, events, LIMITS, clock=lambda: NOW, faults=Faults(fail_step=Step.COMPLETED))

    await saga.handle(reference(ResumeOrder))

    order = ledger.orders["o-1"]
    assert (order.status, order.step, order.failure_reason) == (
        OrderStatus.FAILED,
        "refunded",
        "INJECTED_FAULT",
    )
    assert ledger.available(USER) == (Decimal("1000.00"), Decimal("0.00"))


async def test_a_cancel_finding_its_order_pending_places_it_then_cancels_it() -> None:
    saga, ledger, events = world(price="200")
    stranded(ledger, OrderStatus.PENDING, OrderType.LIMIT_BUY)

    await saga.handle(reference(CancelOrder))

    assert ledger.orders["o-1"].status is OrderStatus.CANCELLED
    assert ledger.available(USER) == (Decimal("1000.00"), Decimal("0.00"))
    assert ledger.records_of("o-1") == ["ORDER_HOLD", "ORDER_RELEASE"]
    # Its stored state announced again, then each state it went through.
    assert events.of("o-1") == [
        ("order.accepted", 1),
        ("order.queued", 2),
        ("order.cancelled", 3),
    ]


# Funds


def last_id(commands: list[Any]) -> str:
    return str(commands[-1].command_id)


def funds(kind: type[Deposit] | type[Withdraw], amount: str, command_id: str = "f-1") -> Any:
    return kind(command_id=command_id, username=USER, auth="t", payload=FundsPayload(amount=amount))


async def test_a_deposit_credits_once_however_often_it_is_delivered() -> None:
    saga, ledger, events = world(usd="0")

    await saga.handle(funds(Deposit, "250"))
    await saga.handle(funds(Deposit, "250"))

    assert ledger.available(USER) == (Decimal("250.00"), Decimal("0.00"))
    assert len(ledger.writes) == 1
    assert ledger.reads == 1  # none for the first delivery: its write needs no read
    assert [e.event_id for e in events.published] == [f"funds:{USER}:f-1"] * 2
    assert events.published[0] == events.published[1]


async def test_a_redelivered_withdrawal_is_answered_applied_after_the_balance_was_spent() -> None:
    saga, ledger, events = world(usd="100")
    await saga.handle(funds(Withdraw, "60", "w-1"))
    await saga.handle(funds(Withdraw, "30", "w-2"))
    ledger.users[USER] = ledger.users[USER].model_copy(update={"is_active": False})

    await saga.handle(funds(Withdraw, "60", "w-1"))  # its first copy's delete was lost

    assert ledger.available(USER) == (Decimal("10.00"), Decimal("0.00"))
    assert [e.event_id for e in events.published] == [
        f"funds:{USER}:w-1",
        f"funds:{USER}:w-2",
        f"funds:{USER}:w-1",
    ]


@pytest.mark.parametrize(
    ("commands", "reason"),
    [
        ([funds(Withdraw, "1001")], "INSUFFICIENT_BALANCE"),
        ([funds(Withdraw, "5000.01")], "LIMIT_EXCEEDED"),
        ([funds(Deposit, "6000", "a"), funds(Deposit, "4000.01", "b")], "LIMIT_EXCEEDED"),
        ([funds(Deposit, "10", "a"), funds(Withdraw, "10", "a")], "CONFLICTING_DUPLICATE"),
        ([funds(Deposit, "10", "stranger")], "UNKNOWN_USER"),
        ([funds(Deposit, "10", "disabled")], "USER_INACTIVE"),
    ],
)
async def test_funds_the_rules_refuse_are_rejected(commands: list[Any], reason: str) -> None:
    saga, ledger, _ = world()
    if last_id(commands) == "stranger":
        del ledger.users[USER]
    elif last_id(commands) == "disabled":
        ledger.users[USER] = ledger.users[USER].model_copy(update={"is_active": False})
    *first, last = commands
    for command in first:
        await saga.handle(command)
    before = ledger.available(USER)

    with pytest.raises(CommandRejected) as rejected:
        await saga.handle(last)

    assert rejected.value.reason == reason
    assert ledger.available(USER) == before


class PriceMovesAfterTheRead(MemoryLedger):
    """The matcher applies a new price between the saga's first read and its write."""

    def __init__(self, price: str) -> None:
        super().__init__()
        self.new_price = price

    async def read(self, username: str, **kwargs: Any) -> Snapshot:
        snapshot = await super().read(username, **kwargs)
        if self.new_price:
            btc = self.assets["BTC"]
            self.assets["BTC"] = btc.model_copy(
                update={"price": Decimal(self.new_price), "price_command_id": "peak"}
            )
            self.new_price = ""
        return snapshot


async def test_a_trailing_stop_is_decided_again_when_a_price_lands_before_its_write() -> None:
    """Its trail starts from the price it read: one applied before its write (never one of
    its peaks otherwise) refuses the write, and the order is decided again from it."""
    _, seeded, _ = world(btc="1")
    ledger = PriceMovesAfterTheRead("120")
    ledger.users, ledger.cash, ledger.holdings = seeded.users, seeded.cash, seeded.holdings
    ledger.assets = seeded.assets
    saga = Saga(ledger, MemoryEvents(), LIMITS, clock=lambda: NOW)

    await saga.handle(place(OrderType.TRAILING_STOP_SELL, "1", trail_amount=Decimal("10")))

    order = ledger.orders["o-1"]
    assert (order.status, order.best_price, order.stop_price) == (
        OrderStatus.QUEUED,
        Decimal("120"),
        Decimal("110"),
    )
    assert len(ledger.writes) == 1


# Dispatch


def test_every_command_but_price_and_rate_updates_has_a_route_in_the_saga() -> None:
    assert set(CommandType) - set(ROUTES) == {CommandType.UPDATE_PRICE, CommandType.UPDATE_RATE}


async def test_a_price_update_sent_to_the_order_worker_is_rejected_unread() -> None:
    saga, ledger, events = world()
    update = UpdatePrice(
        command_id="p-1",
        username=USER,
        auth="t",
        payload=PricePayload(asset_id="BTC", price="101"),
    )

    with pytest.raises(CommandRejected) as rejected:
        await saga.handle(update)

    assert rejected.value.reason is Reason.UNSUPPORTED_COMMAND
    assert (ledger.reads, ledger.writes, events.published) == (0, [], [])
