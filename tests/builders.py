"""Orders as tests need them, built one way: from an `OrderCreate` as a producer sends it,
placed as the order worker places it, then moved to the state the test starts from."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.triggers import trail_stop


def an_order(
    kind: OrderType = OrderType.MARKET_BUY,
    *,
    username: str = "trader",
    asset_id: str = "BTC",
    quantity: str = "1",
    at: datetime | None = None,
    **request: Any,
) -> Order:
    """A PENDING order as placed; `at` sets when it was created and last changed; any other
    field is the request's (`limit_price`, `trail_amount`, `expires_at`...)."""
    create = OrderCreate.model_validate(
        {"order_type": kind, "asset_id": asset_id, "quantity": quantity, **request}
    )
    placed = Order.place(username, create)
    return placed if at is None else placed.evolve(created_at=at, updated_at=at)


def a_resting_order(
    kind: OrderType, *, status: OrderStatus = OrderStatus.QUEUED, **fields: Any
) -> Order:
    """An order the book holds (QUEUED, its second state), as the order worker leaves it."""
    return an_order(kind, **fields).evolve(status=status, sequence=2)


def a_trailing_stop(
    kind: OrderType = OrderType.TRAILING_STOP_SELL,
    *,
    best: str,
    trail: str = "10",
    **fields: Any,
) -> Order:
    """A resting trailing stop whose best price so far is `best`, its stop `trail` away."""
    order = a_resting_order(kind, trail_amount=trail, **fields)
    stop = trail_stop(kind, Decimal(best), Decimal(trail), None)
    return order.evolve(best_price=Decimal(best), stop_price=stop)
