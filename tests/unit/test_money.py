from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from order_processor.domain.assets import AssetTransaction, AssetTransactionType
from order_processor.domain.money import (
    buy_cost,
    exact_total,
    market_value,
    order_value,
    parse_decimal,
    parse_signed,
    sell_proceeds,
)
from order_processor.domain.orders import OrderCreate, OrderType

cents = st.integers(min_value=1, max_value=10**15 - 1).map(lambda c: Decimal(c).scaleb(-2))
quantities = st.decimals(
    min_value=Decimal("0.00000001"), max_value=Decimal("100000"), places=8, allow_nan=False
)
prices = st.decimals(
    min_value=Decimal("0.00000001"), max_value=Decimal("1000000"), places=8, allow_nan=False
)


@given(cents)
def test_a_valid_usd_amount_survives_its_string_form_exactly(amount: Decimal) -> None:
    parsed = parse_decimal(str(amount), field="amount", places=2)

    assert parsed == amount
    assert parsed.as_tuple().exponent == -2


@given(cents, st.integers(min_value=1, max_value=9))
def test_a_fraction_of_a_cent_is_refused_not_rounded(amount: Decimal, extra: int) -> None:
    text = f"{amount}{extra}"

    with pytest.raises(ValueError, match="amount: .* has more than 2 decimal places"):
        parse_decimal(text, field="amount", places=2)


@given(quantities, prices)
def test_rounding_favours_the_house_by_less_than_a_cent(quantity: Decimal, price: Decimal) -> None:
    exact = quantity * price

    cost, proceeds = buy_cost(quantity, price), sell_proceeds(quantity, price)

    assert exact <= cost < exact + Decimal("0.01")
    assert exact - Decimal("0.01") < proceeds <= exact
    assert proceeds <= market_value(quantity, price) <= cost


def test_rounding_examples() -> None:
    assert buy_cost(Decimal("0.333"), Decimal("1")) == Decimal("0.34")
    assert sell_proceeds(Decimal("0.333"), Decimal("1")) == Decimal("0.33")
    assert buy_cost(Decimal("2"), Decimal("0.5")) == Decimal("1.00")
    assert market_value(Decimal("0.125"), Decimal("1")) == Decimal("0.12")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("NaN", "not a finite number"),
        ("-inf", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("-0", "negative zero"),
        ("-0.00", "negative zero"),
        ("-5", "must not be negative"),
        ("0", "greater than zero"),
        ("1e15", "too large"),
        ("1E-3", "more than 2 decimal places"),
        ("12.345", "more than 2 decimal places"),
        ("12,50", "not a decimal number"),
        ("", "not a decimal number"),
        ("\u0661\u0662", "not a decimal number"),
        (0.1, "not floats"),
        (True, "not bools"),
        (None, "expected a decimal string"),
    ],
)
def test_bad_amounts_are_refused_naming_the_field(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_decimal(value, field="amount", places=2)

    assert str(raised.value).startswith("amount: ")


def test_accepted_forms() -> None:
    assert parse_decimal("5", field="a", places=2) == Decimal("5.00")
    assert str(parse_decimal(" 5.1 ", field="a", places=2)) == "5.10"
    assert str(parse_decimal("1E+2", field="a", places=8, pad=False)) == "100"
    assert str(parse_decimal("0.50", field="a", places=8, pad=False)) == "0.5"  # as stored
    assert parse_decimal(7, field="a", places=2) == Decimal("7.00")
    assert parse_signed("-1.5", field="a", places=2) == Decimal("-1.50")
    assert parse_signed(Decimal("-2"), field="a", places=2) == Decimal("-2.00")
    with pytest.raises(ValueError, match="not floats"):
        parse_signed(-0.5, field="a", places=2)


@given(quantities)
def test_quantities_travel_as_fixed_point_strings(quantity: Decimal) -> None:
    request = OrderCreate(order_type=OrderType.MARKET_BUY, asset_id="BTC", quantity=quantity)

    wire = request.model_dump(mode="json")["quantity"]

    assert "E" not in wire.upper()
    assert Decimal(wire) == quantity
    assert OrderCreate.model_validate_json(request.model_dump_json()).quantity == quantity


def test_a_tiny_quantity_is_not_written_in_scientific_notation() -> None:
    request = OrderCreate.model_validate(
        {"order_type": "MARKET_BUY", "asset_id": "BTC", "quantity": "0.0000001"}
    )

    assert request.model_dump(mode="json")["quantity"] == "0.0000001"


def test_zeros_beyond_the_places_are_dropped_so_dynamodb_can_store_the_value() -> None:
    quantity = parse_decimal("1." + "0" * 40, field="quantity", places=18, pad=False)
    assert (quantity, format(quantity, "f")) == (Decimal("1"), "1")
    TypeSerializer().serialize(quantity)  # boto3 refuses more than 38 significant digits


@given(
    st.integers(min_value=0, max_value=10**15 - 1),
    st.integers(min_value=0, max_value=10**18 - 1),
    st.integers(min_value=0, max_value=60),
)
def test_every_accepted_quantity_fits_a_dynamodb_number(
    whole: int, fraction: int, zeros: int
) -> None:
    text = f"{whole}.{fraction:018d}{'0' * zeros}"
    quantity = parse_decimal(text, field="quantity", places=18, pad=False, allow_zero=True)
    assert quantity == Decimal(text)
    TypeSerializer().serialize(quantity)


def test_the_order_value_limit_sees_every_digit() -> None:
    """28 digits (the default context) would round this product down to the limit."""
    quantity = Decimal("142857142857.142857142857142858")
    assert order_value(quantity, Decimal("0.00000007")) > Decimal("10000.00")
    assert buy_cost(quantity, Decimal("0.00000007")) == Decimal("10000.01")


def test_ledger_arithmetic_on_33_digit_quantities_is_exact() -> None:
    quantity = Decimal("123456789012345.123456789012345678")  # 15 + 18 digits
    sell = AssetTransaction(
        transaction_id="o-1#sell",
        username="alice_01",
        asset_id="PEPE",
        transaction_type=AssetTransactionType.SELL,
        quantity=quantity,
        price=Decimal("1"),
        total_amount=Decimal("0"),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert sell.available_delta == quantity.copy_negate()  # `-quantity` would round
    assert exact_total([quantity, sell.available_delta, quantity]) == quantity
