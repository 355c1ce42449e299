"""Conditional orders (issue 13) attacked from the outside: a producer with a valid
customer token sends every field of a PlaceOrder, and the price path does the rest. Each
test states what the contract promises: the defects the attack found are fixed, the other
attacks held. In-memory ports (tests/unit/fakes.py refuses as
DynamoLedger does), plus the command handler for what a message ends as."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from order_processor.domain.balances import BalanceTransaction
from order_processor.domain.commands import (
    CancelOrder,
    ExecuteOrder,
    ExecutePayload,
    ServiceName,
)
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.steps import Step
from order_processor.domain.triggers import hold_price, trailed
from order_processor.exceptions import CommandRejected
from order_processor.handlers.admission import Admission
from order_processor.handlers.commands import CommandHandler
from order_processor.messaging.consumer import Ack, Message
from order_processor.messaging.producer import UNSIGNED, signed_by
from order_processor.ops.ledger_audit import order_mismatches
from order_processor.saga.decision import moved
from order_processor.saga.engine import Saga
from order_processor.saga.records import credit, debit, hold, joined, release
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager
from tests.unit.fakes import MemoryFailures, MemoryLedger
from tests.unit.test_saga import LIMITS, NOW, USER, place, reference, world

T = OrderType
SECRET = "attack-secret-" + "z" * 32
TOKENS = TokenManager(SECRET, clock=lambda: NOW)


def with_price(ledger: MemoryLedger, price: str) -> None:
    ledger.assets["BTC"] = ledger.assets["BTC"].model_copy(update={"price": Decimal(price)})


def handler(saga: Saga) -> CommandHandler:
    return CommandHandler(
        saga=saga,
        events=saga.events,
        admission=Admission(TOKENS, clock=lambda: NOW),
        audit=AuditLogger(io.StringIO()),
        failures=MemoryFailures(),
    )


def customer_place(order_id: str, kind: OrderType, quantity: str, **fields: str) -> str:
    """A PlaceOrder as any producer holding the customer's own token can send it."""
    return json.dumps(
        {
            "schema": "order-processor/command/v1",
            "command_id": f"c-{order_id}",
            "type": "PlaceOrder",
            "username": USER,
            "issued_at": "2026-11-28T11:59:00Z",
            "auth": TOKENS.create_access_token(USER, role="customer"),
            "payload": {
                "order_id": order_id,
                "order_type": kind.value,
                "asset_id": "BTC",
                "quantity": quantity,
                **fields,
            },
        }
    )


def matcher_execute(order_id: str, cause: str) -> str:
    """The ExecuteOrder the limit matcher sends for a triggered order."""
    command = signed_by(
        TOKENS,
        ServiceName.LIMIT_MATCHER,
        ExecuteOrder(
            command_id=f"execute-{order_id}-{cause}",
            username=USER,
            auth=UNSIGNED,
            issued_at=NOW,
            payload=ExecutePayload(order_id=order_id, asset_id="BTC"),
        ),
    )
    return command.body()


def message(number: int, body: str, receive_count: int = 1) -> Message:
    return Message(f"m-{number}", f"r-{number}", body, receive_count=receive_count)


# Defects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (T.STOP_SELL, {"stop_price": "100"}),
        (T.TRAILING_STOP_SELL, {"trail_amount": "1"}),
    ],
)
async def test_a_conditional_sell_filled_for_less_than_a_cent_fails_too_small_holds_released(
    kind: OrderType, fields: dict[str, str]
) -> None:
    """0.0002 BTC at the stop (~100) is 0.02 USD: placing accepts it. The market gaps down
    to 40: 0.008 USD, 0.00 rounded down. The order must end (FAILED ORDER_TOO_SMALL, its
    quantity released), not raise."""
    saga, ledger, _ = world(btc="1", price="101")
    await saga.handle(place(kind, "0.0002", **fields))
    assert ledger.orders["o-1"].status is OrderStatus.QUEUED
    with_price(ledger, "40")

    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    closed = ledger.orders["o-1"]
    assert closed.status is OrderStatus.FAILED
    assert ledger.holding(USER, "BTC") == (Decimal("1"), Decimal("0"))


async def test_a_stop_sell_that_would_fill_for_less_than_a_cent_is_answered_not_dead_lettered() -> (
    None
):
    saga, ledger, _ = world(btc="1", price="101")
    await saga.handle(place(T.STOP_SELL, "0.0002", stop_price="100"))
    with_price(ledger, "40")
    commands = handler(saga)

    outcomes: dict[str, object] = {}
    for minute in range(3):  # three rematches, each on its last delivery
        body = matcher_execute("o-1", f"rematch:{minute}")
        outcomes |= await commands.handle_group(USER, [message(minute, body, receive_count=5)])

    assert outcomes == {"m-0": Ack(), "m-1": Ack(), "m-2": Ack()}
    assert ledger.orders["o-1"].status is not OrderStatus.QUEUED


async def test_a_stop_sell_placed_above_the_market_for_less_than_a_cent_fails_too_small() -> None:
    saga, ledger, _ = world(btc="1", price="100")

    await saga.handle(place(T.STOP_SELL, "0.00001", stop_price="1000"))  # 0.01 at the stop

    assert ledger.orders["o-1"].status is OrderStatus.FAILED


HUGE = "999999999999999"


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (T.STOP_BUY, {"stop_price": HUGE}),
        (T.TRAILING_STOP_BUY, {"trail_amount": HUGE}),
        (T.TRAILING_STOP_BUY, {"trail_amount": "999999999999900"}),  # + the market's 100
    ],
)
async def test_a_conditional_buy_whose_stop_or_hold_reaches_10_to_the_15_is_rejected(
    kind: OrderType, fields: dict[str, str]
) -> None:
    saga, ledger, _ = world()

    try:
        await saga.handle(place(kind, "0.00000001", **fields))
    except CommandRejected:
        return  # a rejection is a fine answer
    assert ledger.orders["o-1"].status is OrderStatus.FAILED


@pytest.mark.parametrize(
    "fields",
    [{"stop_price": HUGE}, {"trail_amount": HUGE}],
    ids=["stop buy", "trailing buy"],
)
async def test_a_customers_place_order_with_a_huge_stop_is_rejected_not_retried(
    fields: dict[str, str],
) -> None:
    saga, ledger, _ = world()
    kind = T.STOP_BUY if "stop_price" in fields else T.TRAILING_STOP_BUY
    later = customer_place("o-2", T.MARKET_BUY, "1")  # the user's next command

    outcomes = await handler(saga).handle_group(
        USER, [message(1, customer_place("o-1", kind, "0.00000001", **fields)), message(2, later)]
    )

    assert outcomes == {"m-1": Ack(), "m-2": Ack()}
    assert ledger.orders["o-2"].status is OrderStatus.COMPLETED


async def test_a_trailing_sell_whose_trail_leaves_no_stop_below_the_price_is_rejected() -> None:
    saga, ledger, _ = world(btc="2000000", price="0.00000001")

    with pytest.raises(CommandRejected, match="no stop below the market price"):
        await saga.handle(place(T.TRAILING_STOP_SELL, "1000000", trail_amount="5"))
    with pytest.raises(CommandRejected, match="no stop below the market price"):
        await saga.handle(place(T.TRAILING_STOP_SELL, "1000000", trail_percent="99.99"))

    assert ledger.orders == {}


def _completed(kind: OrderType, price: str, **fields: str) -> tuple[Order, list[Any], list[Any]]:
    request = OrderCreate.model_validate(
        {"order_type": kind, "asset_id": "BTC", "quantity": "1", **fields}
    )
    placed = Order.place(USER, request, order_id="o-1")
    accepted = placed.evolve(
        status=OrderStatus.QUEUED,
        sequence=2,
        step="held",
        created_at=NOW,
        updated_at=NOW,
        hold_price=hold_price(placed, LIMITS.stop_slippage_percent),
    )
    processing = moved(
        accepted,
        NOW,
        Step.DEBITED,
        status=OrderStatus.PROCESSING,
        price=Decimal(price),
        total_amount=Decimal(price).quantize(Decimal("0.01")),
    )
    completed = moved(processing, NOW, Step.COMPLETED, status=OrderStatus.COMPLETED)
    usd, trades = joined(hold(accepted), release(completed), debit(completed), credit(completed))
    stored = [BalanceTransaction(**r.model_dump(), created_at=NOW, updated_at=NOW) for r in usd]
    return completed, stored, list(trades)


def test_the_audit_flags_a_stop_loss_sell_filled_above_its_stop() -> None:
    order, usd, trades = _completed(T.STOP_SELL, "120", stop_price="90")

    assert order_mismatches(order, usd, trades, now=datetime(2026, 11, 28, 12, tzinfo=UTC))


# Attacks that held --------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"order_type": "STOP_SELL"},  # no stop
        {"order_type": "STOP_SELL", "stop_price": "90", "limit_price": "90"},  # a stop-limit
        {"order_type": "LIMIT_SELL", "limit_price": "90", "stop_price": "90"},
        {"order_type": "MARKET_BUY", "stop_price": "90"},
        {"order_type": "TRAILING_STOP_SELL"},  # no trail
        {"order_type": "TRAILING_STOP_SELL", "trail_amount": "5", "trail_percent": "5"},
        {"order_type": "TRAILING_STOP_SELL", "trail_amount": "5", "stop_price": "90"},
        {"order_type": "TRAILING_STOP_BUY", "trail_percent": "0"},
        {"order_type": "TRAILING_STOP_BUY", "trail_percent": "100"},
        {"order_type": "TRAILING_STOP_BUY", "trail_percent": "100.00"},
        {"order_type": "TRAILING_STOP_BUY", "trail_percent": "-5"},
        {"order_type": "TRAILING_STOP_BUY", "trail_percent": "0.001"},
        {"order_type": "TRAILING_STOP_BUY", "trail_percent": "NaN"},
        {"order_type": "TRAILING_STOP_BUY", "trail_amount": "0"},
        {"order_type": "TRAILING_STOP_BUY", "trail_amount": "0.000000001"},
        {"order_type": "STOP_BUY", "stop_price": "0"},
        {"order_type": "STOP_BUY", "stop_price": "1e15"},
        {"order_type": "STOP_BUY", "stop_price": "-0"},
        {"order_type": "STOP_BUY", "stop_price": 100.5},  # a float
        {"order_type": "STOP_BUY", "stop_price": "100", "trail_amount": "5"},
        {"order_type": "TAKE_PROFIT_BUY", "stop_price": "80", "trail_percent": "5"},
    ],
)
def test_mismatched_or_out_of_range_conditional_fields_are_refused_at_the_schema(
    fields: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        OrderCreate.model_validate({"asset_id": "BTC", "quantity": "1", **fields})


async def test_a_redelivered_trailing_stop_after_its_stop_moved_is_the_same_request() -> None:
    saga, ledger, _ = world(btc="2", price="100")
    await saga.handle(place(T.TRAILING_STOP_SELL, "1", trail_percent="5"))
    stored = ledger.orders["o-1"]
    ledger.orders["o-1"] = stored.evolve(best_price=Decimal("200"), stop_price=Decimal("190"))
    with_price(ledger, "195")

    await saga.handle(place(T.TRAILING_STOP_SELL, "1", trail_percent="5"))  # redelivered

    kept = ledger.orders["o-1"]
    assert (kept.status, kept.stop_price, kept.best_price) == (
        OrderStatus.QUEUED,
        Decimal("190"),
        Decimal("200"),
    )
    with pytest.raises(CommandRejected, match="different request"):
        await saga.handle(place(T.TRAILING_STOP_SELL, "1", trail_percent="6"))


async def test_a_stop_buy_that_ran_past_its_hold_never_takes_what_other_orders_hold() -> None:
    """A limit buy holds 500; a stop buy holds 231 (2 x 110 x 1.05); 269 stay available.
    The stop fires at 300 (600 to pay: 369 more than its hold, 100 more than available)."""
    saga, ledger, _ = world(usd="1000", price="105")
    await saga.handle(place(T.LIMIT_BUY, "5", "100", order_id="o-limit"))
    await saga.handle(place(T.STOP_BUY, "2", stop_price="110", order_id="o-stop"))
    assert ledger.available(USER) == (Decimal("269.00"), Decimal("731.00"))
    with_price(ledger, "300")

    await saga.handle(reference(ExecuteOrder, order_id="o-stop", asset_id="BTC"))

    assert ledger.orders["o-stop"].failure_reason == "INSUFFICIENT_BALANCE"
    assert ledger.orders["o-limit"].status is OrderStatus.QUEUED
    assert ledger.available(USER) == (Decimal("500.00"), Decimal("500.00"))


@pytest.mark.parametrize(
    ("kind", "fields", "path"),
    [
        (T.TAKE_PROFIT_SELL, {"stop_price": "140"}, []),  # 9,800 at the target; fires at 150
        (T.STOP_BUY, {"stop_price": "0.01"}, []),  # holds 0.0105 each; fires at once at 150
        (T.STOP_BUY, {"stop_price": "130"}, ["151"]),  # holds 9,555; the price gaps past it
        (T.TRAILING_STOP_SELL, {"trail_amount": "20"}, ["200", "180"]),  # 9,100 at its stop
        (T.TRAILING_STOP_BUY, {"trail_amount": "1"}, ["100", "150"]),  # 10,605 held at 151
    ],
)
async def test_the_value_limit_is_enforced_at_the_fill_whatever_the_trigger_claimed(
    kind: OrderType, fields: dict[str, str], path: list[str]
) -> None:
    """Limit 10,000; 70 BTC at 150 is 10,500. Placing checks the value at the trigger (or
    the hold); the fill at the market must check it again, whatever the path."""
    saga, ledger, _ = world(usd="20000", btc="70", price="150" if path != ["100", "150"] else "140")
    await saga.handle(place(kind, "70", **fields))
    for price in path:
        with_price(ledger, price)
        stored = ledger.orders["o-1"]
        if stored.status is OrderStatus.QUEUED and (step := trailed(stored, Decimal(price))):
            ledger.orders["o-1"] = stored.evolve(best_price=step[0], stop_price=step[1])
        if stored.status is OrderStatus.QUEUED:
            await saga.handle(reference(ExecuteOrder, asset_id="BTC"))

    done = ledger.orders["o-1"]
    assert (done.status, done.failure_reason) == (OrderStatus.FAILED, "ORDER_VALUE_LIMIT")
    assert ledger.available(USER) == (Decimal("20000.00"), Decimal("0.00"))
    assert ledger.holding(USER, "BTC") == (Decimal("70"), Decimal("0"))


async def test_cancel_execute_and_expire_of_one_triggered_trailing_stop_end_it_once() -> None:
    saga, ledger, _ = world(btc="2", price="100")
    await saga.handle(place(T.TRAILING_STOP_SELL, "1", trail_amount="5"))
    with_price(ledger, "90")

    await saga.handle(reference(ExecuteOrder, asset_id="BTC"))
    with pytest.raises(CommandRejected, match="only a QUEUED order"):
        await saga.handle(reference(CancelOrder))
    await saga.handle(reference(ExecuteOrder, asset_id="BTC", order_id="o-1"))

    assert ledger.orders["o-1"].status is OrderStatus.COMPLETED
    assert ledger.records_of("o-1") == ["HOLD", "ORDER_SALE", "RELEASE", "SELL"]
    assert ledger.available(USER)[0] == Decimal("1090.00")
    assert ledger.holding(USER, "BTC") == (Decimal("1"), Decimal("0"))


def test_the_audit_accepts_each_conditional_type_filled_as_the_saga_fills_it() -> None:
    for kind, price, fields in [
        (T.STOP_SELL, "85", {"stop_price": "90"}),
        (T.STOP_BUY, "130", {"stop_price": "110"}),
        (T.TAKE_PROFIT_BUY, "79", {"stop_price": "80"}),
        (T.TAKE_PROFIT_SELL, "121", {"stop_price": "120"}),
    ]:
        order, usd, trades = _completed(kind, price, **fields)
        assert order_mismatches(order, usd, trades, now=NOW) == [], kind


async def test_a_moved_trail_is_announced_under_an_id_of_its_own() -> None:
    saga, ledger, events = world(btc="2", price="100")
    await saga.handle(place(T.TRAILING_STOP_SELL, "1", trail_amount="10"))
    stored = ledger.orders["o-1"]
    # The matcher's move, as the store makes it: a state of its own (sequence up by one).
    ledger.orders["o-1"] = stored.evolve(
        best_price=Decimal("150"), stop_price=Decimal("140"), sequence=stored.sequence + 1
    )
    with_price(ledger, "145")  # the matcher saw 150, now 145: still waiting

    await saga.handle(place(T.TRAILING_STOP_SELL, "1", trail_amount="10"))  # redelivered

    assert ledger.orders["o-1"].status is OrderStatus.QUEUED
    stops: dict[str, set[str]] = {}
    for event in events.published:
        stops.setdefault(event.event_id, set()).add(str((event.data or {}).get("stop_price")))
    assert all(len(seen) == 1 for seen in stops.values()), stops


def customer_cancel(order_id: str) -> str:
    return json.dumps(
        {
            "schema": "order-processor/command/v1",
            "command_id": f"cancel-{order_id}",
            "type": "CancelOrder",
            "username": USER,
            "issued_at": "2026-11-28T11:59:00Z",
            "auth": TOKENS.create_access_token(USER, role="customer"),
            "payload": {"order_id": order_id},
        }
    )


async def test_the_owners_cancel_behind_a_tiny_stop_sells_execution_goes_through() -> None:
    saga, ledger, _ = world(btc="1", price="101")
    await saga.handle(place(T.STOP_SELL, "0.0002", stop_price="100"))
    with_price(ledger, "40")

    outcomes = await handler(saga).handle_group(
        USER,
        [
            message(1, matcher_execute("o-1", "update-1"), receive_count=5),
            message(2, customer_cancel("o-1")),
        ],
    )

    assert outcomes == {"m-1": Ack(), "m-2": Ack()}  # the cancel: too late, answered
    failed = ledger.orders["o-1"]
    assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "ORDER_TOO_SMALL")
    assert ledger.holding(USER, "BTC") == (Decimal("1"), Decimal("0"))
