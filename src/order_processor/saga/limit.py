"""The resting orders' saga: limit orders, and the conditional ones (stop, take-profit,
trailing stop), which rest the same way and execute at the market price once triggered
(`domain.triggers`).

    (new) ──accept, hold──▶ QUEUED ──execute──▶ COMPLETED
      │          └─(marketable at once: the same write)─▶ COMPLETED
      └──▶ FAILED           ├──cancel──▶ CANCELLED (hold released)
                            ├──expire──▶ EXPIRED   (hold released)
                            └──refused─▶ FAILED    (hold released, step `released`)

A buy holds `quantity x limit` rounded up to the cent (ORDER_HOLD: available → held); a
sell holds the quantity (asset HOLD). While QUEUED the order sits in the sparse
OpenLimitOrders index. Execution re-checks what placing checked, at the market price read
with the order and the worker's clock: past its expiry the order is never filled, it
expires; a value over the limit at the market price, or a user disabled since, ends it
FAILED; otherwise, if the price triggers it (buy: price ≤ limit; sell: price ≥ limit), one
write releases the hold, pays at the market price (never worse than the limit: a buy keeps
the difference available) and credits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial

from order_processor.domain.assets import Asset
from order_processor.domain.money import buy_cost, order_value, sell_proceeds
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.ports import Snapshot
from order_processor.domain.steps import Step
from order_processor.domain.triggers import trigger_price, triggered
from order_processor.domain.users import User
from order_processor.exceptions import Reason
from order_processor.saga.decision import (
    NOTHING,
    Decision,
    Limits,
    Refused,
    ends_with,
    failed,
    moved,
    order_write,
)
from order_processor.saga.quotes import unit_of, value_limit
from order_processor.saga.records import Records, credit, debit, hold, joined, release

# The step that closes a QUEUED order, by the status it ends in: its hold is released.
CLOSING_STEP = {
    OrderStatus.CANCELLED: Step.CANCELLED,
    OrderStatus.EXPIRED: Step.EXPIRED,
    OrderStatus.FAILED: Step.RELEASED,
}


@dataclass(frozen=True)
class Moves:
    """States an order goes through from a given one, and their records."""

    states: list[Order]
    records: Records


def is_due(order: Order, now: datetime) -> bool:
    return order.expires_at is not None and order.expires_at <= now


def place(
    snapshot: Snapshot, pending: Order, before: list[Order], at: datetime, limits: Limits
) -> Decision:
    """A PENDING limit order held (QUEUED) and, if the market already triggers it,
    executed in the same write."""
    fail = partial(failed, snapshot, pending, before, at)
    reference = pending.hold_price or trigger_price(pending)
    assert reference is not None
    limit = value_limit(snapshot, pending.quote_currency, at, limits)
    if limit is None:
        return fail(Reason.FX_RATE_STALE)
    if order_value(pending.quantity, reference) > limit:
        return fail(Reason.ORDER_VALUE_LIMIT)
    if sell_proceeds(pending.quantity, reference, unit_of(pending)) < unit_of(pending):
        return fail(Reason.ORDER_TOO_SMALL)
    queued = moved(pending, at, Step.HELD, status=OrderStatus.QUEUED)
    then = execution(snapshot, queued, at, limits) or Moves([], ((), ()))
    states = [*before, queued, *then.states]
    records = joined(hold(queued), then.records)
    return order_write(snapshot, states, records, snapshot.order, ends_with(fail))


def execute(snapshot: Snapshot, queued: Order, at: datetime, limits: Limits) -> Decision:
    """ExecuteOrder (the matcher), or any command finding the order QUEUED and marketable."""
    then = execution(snapshot, queued, at, limits)
    if then is None:
        return NOTHING
    return order_write(snapshot, then.states, then.records, queued, failing(snapshot, queued, at))


def failing(snapshot: Snapshot, queued: Order, at: datetime) -> Refused:
    """An execution refused for the order's own reason (a stop buy whose price ran past its
    hold and what is available): FAILED, its hold released."""
    return ends_with(partial(close, snapshot, queued, at, OrderStatus.FAILED))


def close(
    snapshot: Snapshot,
    queued: Order,
    at: datetime,
    status: OrderStatus,
    reason: Reason | None = None,
) -> Decision:
    """Cancel, expire or fail a QUEUED order: its hold released in the same write."""
    then = closing(queued, at, status, reason)
    return order_write(snapshot, then.states, then.records, replaces=queued)


def execution(snapshot: Snapshot, queued: Order, at: datetime, limits: Limits) -> Moves | None:
    """What executing a QUEUED order does now; None when it stays QUEUED (the asset is
    unknown or not tradable, or the price does not trigger it)."""
    if is_due(queued, at):
        return closing(queued, at, OrderStatus.EXPIRED)
    asset = snapshot.asset
    if asset is None or asset.asset_id != queued.asset_id:
        return None  # not this order's price: never settle at another asset's
    if not asset.is_active or not triggered(queued, asset.price):
        return None
    limit = value_limit(snapshot, queued.quote_currency, at, limits)
    if limit is None:
        return None  # no fresh rate to check its value against: it waits for one
    refusal = _refusal(queued, asset, snapshot.user, limit)
    unit = unit_of(queued)
    if refusal is None and sell_proceeds(queued.quantity, asset.price, unit) < unit:
        # A stop sell filled far below its stop: less than a minor unit is no trade.
        refusal = Reason.ORDER_TOO_SMALL
    if refusal:
        return closing(queued, at, OrderStatus.FAILED, refusal)
    rounding = buy_cost if queued.order_type.is_buy else sell_proceeds
    processing = moved(
        queued,
        at,
        Step.DEBITED,
        status=OrderStatus.PROCESSING,
        price=asset.price,
        total_amount=rounding(queued.quantity, asset.price, unit),
    )
    completed = moved(processing, at, Step.COMPLETED, status=OrderStatus.COMPLETED)
    records = joined(release(completed), debit(completed), credit(completed))
    return Moves([processing, completed], records)


def closing(
    queued: Order, at: datetime, status: OrderStatus, reason: Reason | None = None
) -> Moves:
    closed = moved(queued, at, CLOSING_STEP[status], status=status, failure_reason=reason)
    return Moves([closed], release(closed))


def _refusal(order: Order, asset: Asset, user: User | None, limit: Decimal) -> Reason | None:
    """What placing checked that no longer holds: the order's value at the market price
    (against the value limit in its quote currency), and its user (disabled since it was
    placed)."""
    if order_value(order.quantity, asset.price) > limit:
        return Reason.ORDER_VALUE_LIMIT
    if user is None:
        return Reason.UNKNOWN_USER
    return None if user.is_active else Reason.USER_INACTIVE
