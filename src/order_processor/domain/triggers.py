"""When a resting order executes, and how a trailing stop follows the market.

- A limit buy triggers at a price at or below its limit, a limit sell at or above.
- A conditional order triggers at its `stop_price`: a stop sell, a take-profit buy and a
  trailing stop sell when the price falls to it or below; a stop buy, a take-profit sell
  and a trailing stop buy when the price rises to it or above.
- A trailing stop keeps the best price seen since placement (a sell: the highest; a buy:
  the lowest) and its stop at the trail's distance from it. The best price only moves in
  the order's favour, so an old, repeated or out-of-order price never moves it back.
- A buy holds `quantity x hold_price`, rounded up: a limit buy its limit, a take-profit buy
  its target (it executes at or below it), a stop buy (and a trailing one, from its first
  stop) the stop plus the slippage allowance; execution releases the hold and pays the
  market price, topping the hold up from what is available when the price ran past it.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum

from order_processor.domain.money import PRICE_PLACES
from order_processor.domain.orders import Order, OrderType

TICK = Decimal(1).scaleb(-PRICE_PLACES)  # the smallest price


def trigger_price(order: Order) -> Decimal | None:
    return order.limit_price if order.order_type.is_limit else order.stop_price


def triggered(order: Order, price: Decimal) -> bool:
    kind, at = order.order_type, trigger_price(order)
    if at is None:
        return False
    if kind.is_limit:
        return price <= at if kind.is_buy else price >= at
    return price >= at if kind.triggers_on_rise else price <= at


class PriceMove(StrEnum):
    FALL = "FALL"
    RISE = "RISE"


def price_move(before: Decimal, after: Decimal) -> PriceMove | None:
    """The direction from one price to the next (None: it did not move)."""
    if after == before:
        return None
    return PriceMove.FALL if after < before else PriceMove.RISE


def reach_price(order: Order, move: PriceMove) -> Decimal | None:
    """The price at which a `move` of the market starts to concern a resting order (it
    triggers it, or moves its trail), or None when that direction never does."""
    kind = order.order_type
    if not kind.rests:
        return None
    on_rise = (not kind.is_buy) if kind.is_limit else kind.triggers_on_rise
    if kind.is_trailing:
        # Triggered one way by its stop, moved the other way by its best price.
        return order.stop_price if (move is PriceMove.RISE) == on_rise else order.best_price
    if (move is PriceMove.RISE) != on_rise:
        return None
    return trigger_price(order)


def reaches(order: Order, price: Decimal, move: PriceMove) -> bool:
    """A `move` to `price` reaches the order: a fall to its reach price or below, a rise
    to it or above."""
    at = reach_price(order, move)
    if at is None:
        return False
    return price <= at if move is PriceMove.FALL else price >= at


def trail_leaves_room(
    kind: OrderType, best: Decimal, amount: Decimal | None, percent: Decimal | None
) -> bool:
    """A trailing sell's first stop must be a price (at least the smallest one) below the
    market: a trail as large as the price would sell at once, without any retracement."""
    if kind is not OrderType.TRAILING_STOP_SELL:
        return True
    with localcontext() as context:
        context.prec = 60
        distance = amount if amount is not None else best * (percent or Decimal(0)) / 100
        return (best - distance).quantize(TICK, rounding=ROUND_FLOOR) >= TICK


def trail_stop(
    kind: OrderType, best: Decimal, amount: Decimal | None, percent: Decimal | None
) -> Decimal:
    """The stop at the trail's distance from the best price (rounded against the order's
    trigger: a sell's stop down, a buy's up; never below the smallest price)."""
    with localcontext() as context:
        context.prec = 60
        if amount is not None:
            distance = amount
        else:
            assert percent is not None
            distance = best * percent / 100
        if kind.is_buy:
            stop = (best + distance).quantize(TICK, rounding=ROUND_CEILING)
        else:
            stop = (best - distance).quantize(TICK, rounding=ROUND_FLOOR)
    return max(stop, TICK)


def trailed(order: Order, price: Decimal) -> tuple[Decimal, Decimal] | None:
    """(best, stop) after seeing `price`, or None when the price does not improve on the
    best so far (a sell: not higher; a buy: not lower)."""
    kind, best = order.order_type, order.best_price
    if not kind.is_trailing:
        return None
    better = best is None or (price < best if kind.is_buy else price > best)
    if not better:
        return None
    return price, trail_stop(kind, price, order.trail_amount, order.trail_percent)


def hold_price(order: Order, slippage_percent: Decimal) -> Decimal | None:
    """What a buy's hold is priced at (None for a sell: it holds its quantity)."""
    kind = order.order_type
    if not kind.is_buy or not kind.rests:
        return None
    if kind.is_limit:
        return order.limit_price
    assert order.stop_price is not None
    if kind is OrderType.TAKE_PROFIT_BUY:
        return order.stop_price
    with localcontext() as context:
        context.prec = 60
        allowance = order.stop_price * (100 + slippage_percent) / 100
        return allowance.quantize(TICK, rounding=ROUND_CEILING)
