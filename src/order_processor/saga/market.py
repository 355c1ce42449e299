"""The market order saga.

    (new) ──accept, debit, credit──▶ COMPLETED        one write
      └──accept──▶ FAILED                             one write (priced out, or refused)

A buy pays USD (ORDER_PAYMENT) and receives the asset (BUY); a sell gives the asset (SELL)
and receives USD (ORDER_SALE). Accepting, debiting and crediting are one TransactWriteItems:
the order item (conditioned on its absence), the debit (conditioned on what is available)
and the credit with their records, fenced. The price is the inventory's, read with the
order, never the producer's. A debit refused for want of funds makes the order FAILED
instead, moving nothing. Orders a v1 worker left PENDING or PROCESSING are taken on from
there (PROCESSING: the credit; its permanent failure refunds the debit).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import partial

from order_processor.domain.assets import Asset
from order_processor.domain.money import (
    buy_cost,
    check_places,
    order_value,
    sell_proceeds,
)
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.ports import Snapshot
from order_processor.domain.steps import Step
from order_processor.exceptions import Reason, StepFailure
from order_processor.saga.decision import Decision, Limits, ends_with, failed, moved, order_write
from order_processor.saga.records import credit, debit, joined, refund

MINIMUM_NOTIONAL = Decimal("0.01")


def priced(order: Order, asset: Asset | None, limits: Limits) -> tuple[Decimal, Decimal]:
    """The price (the inventory's) and the amount (rounded for the house), with the
    checks placing makes: tradable, the asset's precision, the value limit, a cent."""
    if asset is None or asset.asset_id != order.asset_id:  # never another asset's price
        raise StepFailure(Reason.ASSET_NOT_FOUND)
    if not asset.is_active:
        raise StepFailure(Reason.ASSET_NOT_TRADABLE)
    try:
        check_places(order.quantity, field="quantity", places=asset.precision)
    except ValueError as exc:
        raise StepFailure(Reason.INVALID_QUANTITY) from exc
    if order_value(order.quantity, asset.price) > limits.max_order_value:
        raise StepFailure(Reason.ORDER_VALUE_LIMIT)
    amount = (buy_cost if order.order_type.is_buy else sell_proceeds)(order.quantity, asset.price)
    if amount < MINIMUM_NOTIONAL:
        raise StepFailure(Reason.ORDER_TOO_SMALL)
    return asset.price, amount


def fill(
    snapshot: Snapshot,
    pending: Order,
    before: list[Order],
    at: datetime,
    limits: Limits,
) -> Decision:
    """A PENDING market order debited and credited in one write. `before` are the states
    already to announce (the accepted one, for a new order); `snapshot.order` is the stored
    one it replaces (None: new)."""
    fail = partial(failed, snapshot, pending, before, at)
    try:
        price, amount = priced(pending, snapshot.asset, limits)
    except StepFailure as exc:
        return fail(exc.code)
    processing = moved(
        pending, at, Step.DEBITED, status=OrderStatus.PROCESSING, price=price, total_amount=amount
    )
    completed = moved(processing, at, Step.COMPLETED, status=OrderStatus.COMPLETED)
    records = joined(debit(completed), credit(completed))
    states = [*before, processing, completed]
    return order_write(snapshot, states, records, snapshot.order, ends_with(fail))


def credit_debited(snapshot: Snapshot, processing: Order, at: datetime) -> Decision:
    """A v1 order left PROCESSING (debited): credit it; if the credit fails for good,
    give the debit back (ORDER_REFUND or REFUND) and end FAILED."""
    completed = moved(processing, at, Step.COMPLETED, status=OrderStatus.COMPLETED)
    refunded = ends_with(partial(_refunded, snapshot, processing, at))
    return order_write(snapshot, [processing, completed], credit(completed), processing, refunded)


def _refunded(snapshot: Snapshot, processing: Order, at: datetime, reason: Reason) -> Decision:
    failure = moved(processing, at, Step.REFUNDED, status=OrderStatus.FAILED, failure_reason=reason)
    return order_write(snapshot, [processing, failure], refund(failure), processing)
