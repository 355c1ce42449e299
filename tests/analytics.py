"""Final orders for the analytics tests: any mix of types, statuses, users and times."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.currencies import minor_unit
from order_processor.domain.events import Event, conversion_event
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FINAL_STATUSES = (
    OrderStatus.COMPLETED,
    OrderStatus.FAILED,
    OrderStatus.CANCELLED,
    OrderStatus.EXPIRED,
)


def final(
    n: int | str,
    kind: OrderType,
    quantity: str,
    price: str,
    status: OrderStatus = OrderStatus.COMPLETED,
    user: str = "alice_01",
    minutes: float = 0,
    asset: str = "BTC",
    latency_ms: int | None = 40,
    currency: str = "USD",
) -> Order:
    """A final order as the saga leaves it: issued `latency_ms` before its final change;
    its price and total in `currency`, the asset's quote currency."""
    prices = {}
    if kind.is_limit:
        prices["limit_price"] = price
    elif kind.rests:
        prices["stop_price"] = price
    request = OrderCreate(order_type=kind, asset_id=asset, quantity=quantity, **prices)
    placed = Order.place(user, request, order_id=f"o-{n}")
    at = T0 + timedelta(minutes=minutes)
    fields: dict[str, object] = {
        "status": status,
        "sequence": 3,
        "updated_at": at,
        "quote_currency": currency,
    }
    if latency_ms is not None:
        fields["issued_at"] = at - timedelta(milliseconds=latency_ms)
    if status is OrderStatus.COMPLETED:
        total = (Decimal(quantity) * Decimal(price)).quantize(minor_unit(currency))
        fields |= {"price": Decimal(price), "total_amount": total}
    if status is OrderStatus.FAILED:
        fields["failure_reason"] = (
            "ORDER_TOO_SMALL" if str(n).endswith("7") else ("INSUFFICIENT_BALANCE")
        )
    return placed.evolve(**fields)


# The assets of `mixed_finals`, in their quote currencies.
QUOTES = {"BTC": "USD", "ETH": "EUR", "SOL": "JPY"}


def mixed_finals(seed: int, count: int, prefix: str = "") -> list[Order]:
    """`count` final orders of two users in three assets quoted in three currencies, over a
    few hours."""
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        asset = rng.choice(sorted(QUOTES))
        orders.append(
            final(
                f"{prefix}{seed}-{n}",
                rng.choice(
                    [
                        OrderType.MARKET_BUY,
                        OrderType.MARKET_SELL,
                        OrderType.LIMIT_BUY,
                        OrderType.STOP_SELL,
                    ]
                ),
                rng.choice(["0.5", "1", "0.333"]),
                rng.choice(["90", "100.5", "123.45"]),
                rng.choice(FINAL_STATUSES[:1] * 3 + FINAL_STATUSES),
                rng.choice([f"{prefix}alice", f"{prefix}bob"]),
                minutes=rng.uniform(0, 180),
                asset=asset,
                latency_ms=rng.choice([None, 3, 40, 700, 12_000]),
                currency=QUOTES[asset],
            )
        )
    return orders


def conversion(
    conversion_id: str,
    sell: str,
    sold: str,
    buy: str,
    bought: str,
    rate: str,
    user: str = "alice_01",
    spread_percent: str = "0.5",
) -> Event:
    """A `balance.converted` event, as the saga publishes a Convert command's."""
    shared = {"username": user, "reference_id": conversion_id, "rate": rate}
    out = BalanceTransactionCreate(
        transaction_id=f"{conversion_id}#sold",
        transaction_type=TransactionType.CONVERSION_OUT,
        currency=sell,
        amount=sold,
        counter_currency=buy,
        counter_amount=bought,
        spread_percent=spread_percent,
        **shared,
    )
    into = out.model_copy(
        update={
            "transaction_id": f"{conversion_id}#bought",
            "transaction_type": TransactionType.CONVERSION_IN,
            "currency": buy,
            "amount": Decimal(bought),
            "counter_currency": sell,
            "counter_amount": Decimal(sold),
        }
    )
    return conversion_event(conversion_id, out, into, T0)
