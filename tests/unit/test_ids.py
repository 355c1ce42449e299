"""Ids at their limits: every record an order's saga writes has an id that fits, for the
longest order id admission accepts (a record that failed validation once skipped a refund
and stranded an order)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from order_processor.domain.assets import AssetTransactionType
from order_processor.domain.balances import TransactionType
from order_processor.domain.base import ID_MAX_LENGTH, ORDER_ID_MAX_LENGTH, record_id
from order_processor.domain.money import parse_decimal
from order_processor.domain.orders import Order, OrderType
from order_processor.saga.records import SUFFIX, asset_record, usd_record

LONGEST = "o" * ORDER_ID_MAX_LENGTH


def longest_order(kind: OrderType) -> Order:
    return Order(
        order_id=LONGEST,
        username="alice_01",
        order_type=kind,
        asset_id="BTC",
        quantity=Decimal("0.5"),
        limit_price=Decimal("100") if kind.is_limit else None,
        price=Decimal("99"),
        total_amount=Decimal("49.50"),
        updated_at=datetime(2026, 11, 28, tzinfo=UTC),
    )


@pytest.mark.parametrize("kind", list(SUFFIX))
def test_every_usd_record_of_the_longest_order_id_fits(kind: TransactionType) -> None:
    record = usd_record(longest_order(OrderType.LIMIT_BUY), kind, Decimal("49.50"))
    assert len(record.transaction_id) <= ID_MAX_LENGTH
    assert record.transaction_id.startswith(LONGEST + "#")


@pytest.mark.parametrize("kind", list(AssetTransactionType))
def test_every_asset_record_of_the_longest_order_id_fits(kind: AssetTransactionType) -> None:
    record = asset_record(longest_order(OrderType.LIMIT_SELL), kind)
    assert len(record.transaction_id) <= ID_MAX_LENGTH


def test_an_order_id_one_longer_than_the_limit_is_not_an_order() -> None:
    with pytest.raises(ValueError, match="at most 100 characters"):
        Order(
            order_id=LONGEST + "o",
            username="alice_01",
            order_type=OrderType.MARKET_BUY,
            asset_id="BTC",
            quantity=Decimal("1"),
        )
    with pytest.raises(ValueError, match="no record id"):
        record_id(LONGEST + "o", "payment")


def test_a_number_beyond_decimals_exponent_range_is_a_value_error() -> None:
    for text in ("1e99999999999999999999", "1e-99999999999999999999", "9" * 40 + "e9999"):
        with pytest.raises(ValueError, match="amount"):
            parse_decimal(text, field="amount", places=2)
