"""The matcher's trailing-stop moves: decided here (`domain.triggers.trailed`), applied by
the book on condition (`OrderBook.move_trail`).

Every price the feed observed after a trailing stop started is a candidate peak of it; a
price observed before the order's starting price is no peak of it. A move only ever
improves a stop, and the book writes it only if the stored best is still worse, so a
repeated, late or out-of-order price, or a racing matcher, never moves a stop back.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.ports import OrderBook
from order_processor.domain.triggers import trailed
from order_processor.exceptions import OrderChangedException

# A price update's trailing-stop moves in flight at once (one write each): at DynamoDB's
# latency 10,000 moves one after another take over a minute.
TRAIL_MOVES_IN_FLIGHT = 16


async def move_trails(
    book: OrderBook, found: list[Order], price: Decimal, observed_at: datetime | None = None
) -> list[Order]:
    """Every trailing stop among `found` (what the price reached in the book) that this
    price improves on gets it as its best price and its stop moved after it; with
    `observed_at`, only the stops whose starting price was observed before it. The moves
    run `TRAIL_MOVES_IN_FLIGHT` at a time; all are tried before the first error is raised
    (a redelivered update redoes the rest; the moves already made no longer match its
    query). Returns the orders as moved."""
    found = [
        order
        for order in found
        if trailed(order, price) is not None
        and (observed_at is None or (order.trail_since or order.created_at) < observed_at)
    ]
    limit = asyncio.Semaphore(TRAIL_MOVES_IN_FLIGHT)

    async def move(order: Order) -> Order | None:
        async with limit:
            return await move_trail(book, order, price)

    outcomes = await asyncio.gather(*(move(order) for order in found), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [outcome for outcome in outcomes if isinstance(outcome, Order)]


async def move_trail(book: OrderBook, order: Order, price: Decimal) -> Order | None:
    """The order as `price` moved it, or None when it did not move it (the price does not
    improve on it; executed, cancelled or moved further meanwhile: nothing to announce)."""
    improved = trailed(order, price)
    if improved is None:
        return None
    best, stop = improved
    try:
        return await book.move_trail(order, best, stop)
    except OrderChangedException as refused:
        # Moved to this very price already: this move's own write, its answer lost and
        # botocore's retry refused (or an equal move's), announced as it stands.
        current: Order | None = refused.details.get("current")
        if current is not None and current.status is OrderStatus.QUEUED:
            return current if current.best_price == best else None
        return None
