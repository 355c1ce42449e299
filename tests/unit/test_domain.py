from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from order_processor.domain.assets import Asset, AssetBalance
from order_processor.domain.balances import (
    Balance,
    BalanceTransactionCreate,
    TransactionType,
)
from order_processor.domain.base import utc_now
from order_processor.domain.events import order_event
from order_processor.domain.orders import (
    TRANSITIONS,
    Order,
    OrderCreate,
    OrderStatus,
    OrderType,
    check_transition,
    sources_of,
)
from order_processor.domain.portfolio import build_portfolio
from order_processor.domain.users import User, UserCreate
from order_processor.exceptions import (
    FenceConflictException,
    InvalidTransitionException,
    OrderProcessorError,
    ServiceUnavailableException,
    UserNotFoundException,
)
from tests.builders import a_resting_order, a_trailing_stop, an_order


def test_market_orders_run_pending_processing_completed_or_failed() -> None:
    assert OrderStatus.PROCESSING in TRANSITIONS[OrderStatus.PENDING]
    assert TRANSITIONS[OrderStatus.PROCESSING] == {OrderStatus.COMPLETED, OrderStatus.FAILED}


def test_limit_orders_leave_queued_only_to_execute_cancel_expire_or_fail() -> None:
    assert TRANSITIONS[OrderStatus.QUEUED] == {
        OrderStatus.PROCESSING,
        OrderStatus.CANCELLED,
        OrderStatus.EXPIRED,
        OrderStatus.FAILED,
    }
    assert sources_of(OrderStatus.CANCELLED) == {OrderStatus.QUEUED}


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (OrderStatus.COMPLETED, OrderStatus.PROCESSING),
        (OrderStatus.PROCESSING, OrderStatus.CANCELLED),
        (OrderStatus.PENDING, OrderStatus.COMPLETED),
        (OrderStatus.CANCELLED, OrderStatus.QUEUED),
        (OrderStatus.EXPIRED, OrderStatus.FAILED),
    ],
)
def test_any_other_transition_is_refused(current: OrderStatus, target: OrderStatus) -> None:
    with pytest.raises(InvalidTransitionException, match=f"from {current} to {target}"):
        check_transition(current, target)


def test_terminal_statuses_have_no_way_out() -> None:
    terminal = {s for s in OrderStatus if s.is_terminal}

    assert terminal == {
        OrderStatus.COMPLETED,
        OrderStatus.CANCELLED,
        OrderStatus.FAILED,
        OrderStatus.EXPIRED,
    }


def test_limit_orders_need_a_limit_price_and_market_orders_refuse_one() -> None:
    with pytest.raises(ValidationError, match="limit_price: required for LIMIT_BUY"):
        OrderCreate(order_type=OrderType.LIMIT_BUY, asset_id="BTC", quantity=Decimal("1"))
    with pytest.raises(ValidationError, match="limit_price: not allowed for MARKET_SELL"):
        OrderCreate.model_validate(
            {"order_type": "MARKET_SELL", "asset_id": "BTC", "quantity": "1", "limit_price": "5"}
        )


def test_an_order_request_refuses_unknown_fields_and_bad_quantities() -> None:
    with pytest.raises(ValidationError, match="price"):
        OrderCreate.model_validate(
            {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "1", "price": "1"}
        )
    with pytest.raises(ValidationError, match="quantity: must be greater than zero"):
        OrderCreate.model_validate({"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "0"})


def test_an_order_serialises_decimals_as_strings() -> None:
    request = OrderCreate.model_validate(
        {"order_type": "LIMIT_SELL", "asset_id": "eth", "quantity": "1.25", "limit_price": "3000"}
    )

    placed = Order.place("Alice_01", request, order_id="o-1")
    wire = placed.response().model_dump(mode="json")

    assert wire["quantity"] == "1.25"
    assert wire["limit_price"] == "3000.00000000"
    assert wire["asset_id"] == "ETH"
    assert wire["username"] == "alice_01"
    assert "step" not in wire


def test_usernames_follow_the_seed_pattern_and_are_stored_lowercase() -> None:
    fields = {"email": "a@example.com", "first_name": "A", "last_name": "B"}

    assert UserCreate(username="Alice_01", **fields).username == "alice_01"
    for bad in ["short", "has space1", "x" * 31, "dash-name1"]:
        with pytest.raises(ValidationError, match="username"):
            UserCreate(username=bad, **fields)
    with pytest.raises(ValidationError, match="email"):
        UserCreate(username="alice_01", email="not-an-email", first_name="A", last_name="B")


def test_a_user_response_never_carries_the_password_hash() -> None:
    user = User(
        username="alice_01",
        email="a@example.com",
        first_name="A",
        last_name="B",
        password_hash="$2b$12$secret",
    )

    assert "password_hash" not in user.response().model_dump()
    assert "secret" not in repr(user)


def test_transaction_types_move_available_and_held() -> None:
    def deltas(kind: TransactionType, amount: str = "10") -> tuple[Decimal, Decimal]:
        record = BalanceTransactionCreate(username="alice_01", transaction_type=kind, amount=amount)
        return record.available_delta, record.held_delta

    assert deltas(TransactionType.ORDER_HOLD) == (Decimal("-10.00"), Decimal("10.00"))
    assert deltas(TransactionType.ORDER_RELEASE) == (Decimal("10.00"), Decimal("-10.00"))
    assert deltas(TransactionType.WITHDRAW) == (Decimal("-10.00"), Decimal("0.00"))
    assert deltas(TransactionType.SYSTEM_ADJUSTMENT, "-3") == (Decimal("-3.00"), Decimal("0.00"))
    with pytest.raises(ValidationError, match="amount: must not be negative"):
        BalanceTransactionCreate(
            username="alice_01", transaction_type=TransactionType.DEPOSIT, amount="-3"
        )


def test_errors_say_whether_a_retry_can_help() -> None:
    assert FenceConflictException("busy").retryable
    assert ServiceUnavailableException("throttled").retryable
    assert not UserNotFoundException("nobody").retryable
    assert issubclass(UserNotFoundException, OrderProcessorError)
    assert UserNotFoundException.code == "UNKNOWN_USER"


def test_portfolio_skips_empty_holdings_and_values_unknown_assets_at_zero() -> None:
    balance = Balance(username="alice_01", available=Decimal("10"), held=Decimal("5"))
    holdings = [
        AssetBalance(
            username="alice_01", asset_id="BTC", available=Decimal("0.1"), held=Decimal("0.1")
        ),
        AssetBalance(username="alice_01", asset_id="ETH", available=Decimal("0")),
        AssetBalance(username="alice_01", asset_id="GONE", available=Decimal("3")),
    ]
    assets = {"BTC": Asset(asset_id="BTC", name="Bitcoin", price=Decimal("100.005"))}

    portfolio = build_portfolio(balance, holdings, assets)

    assert [(h.asset_id, h.market_value) for h in portfolio.holdings] == [
        ("BTC", Decimal("20.00")),
        ("GONE", Decimal("0.00")),
    ]
    assert portfolio.total_value == Decimal("35.00")


def test_a_portfolio_never_adds_amounts_in_different_currencies_together() -> None:
    balance = Balance(username="alice_01", available=Decimal("10"))
    holdings = [
        AssetBalance(username="alice_01", asset_id="BTC", available=Decimal("1")),
        AssetBalance(username="alice_01", asset_id="BTCEUR", available=Decimal("1")),
        AssetBalance(username="alice_01", asset_id="BTCJPY", available=Decimal("2")),
    ]
    assets = {
        "BTC": Asset(asset_id="BTC", name="B", price=Decimal("100")),
        "BTCEUR": Asset(asset_id="BTCEUR", name="B", price=Decimal("90"), quote_currency="EUR"),
        "BTCJPY": Asset(asset_id="BTCJPY", name="B", price=Decimal("15000"), quote_currency="JPY"),
    }

    portfolio = build_portfolio(balance, holdings, assets)

    assert portfolio.holdings_value_by_currency == {
        "EUR": Decimal("90.00"),
        "JPY": Decimal("30000"),
        "USD": Decimal("100.00"),
    }
    assert (portfolio.holdings_value, portfolio.total_value) == (
        Decimal("100.00"),
        Decimal("110.00"),
    )


@pytest.mark.parametrize(
    "order",
    [
        an_order(),
        an_order(OrderType.MARKET_SELL, quantity="0.00000001").evolve(
            status=OrderStatus.FAILED, failure_reason="INSUFFICIENT_FUNDS", sequence=2
        ),
        a_resting_order(OrderType.LIMIT_BUY, limit_price="9.5").evolve(hold_price=Decimal("9.5")),
        a_resting_order(OrderType.TRAILING_STOP_BUY, trail_percent="2.5").evolve(
            best_price=Decimal("100"), stop_price=Decimal("102.5"), trail_since=utc_now()
        ),
        a_trailing_stop(best="120", expires_at=utc_now() + timedelta(days=1)),
        a_resting_order(OrderType.STOP_SELL, stop_price="1E+1", quantity="6.3850").evolve(
            status=OrderStatus.COMPLETED, price=Decimal("9.99"), total_amount=Decimal("63.79")
        ),
    ],
    ids=lambda order: f"{order.order_type}-{order.status}",
)
def test_an_orders_event_data_is_its_response_field_for_field(order: Order) -> None:
    expected = order.response().model_dump(mode="json")

    data = order_event(order).data

    assert list(data.items()) == list(expected.items())  # values and their order
    assert (
        order_event(order).body() == order_event(order).model_copy(update={"data": expected}).body()
    )
