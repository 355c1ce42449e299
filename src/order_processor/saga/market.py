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

from order_processor.domain.fx import RateUnavailable, quote
from order_processor.domain.money import (
    CEILING,
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
from order_processor.saga.quotes import unit_of, value_limit
from order_processor.saga.records import credit, debit, joined, refund


def priced(
    snapshot: Snapshot, order: Order, at: datetime, limits: Limits
) -> tuple[Decimal, Decimal]:
    """The price (the inventory's) and the amount (rounded for the house, to the quote
    currency's minor unit), with the checks placing makes: tradable, the asset's
    precision, the value limit (at the quote currency's rate), one minor unit."""
    asset = snapshot.asset
    if asset is None or asset.asset_id != order.asset_id:  # never another asset's price
        raise StepFailure(Reason.ASSET_NOT_FOUND)
    if not asset.is_active:
        raise StepFailure(Reason.ASSET_NOT_TRADABLE)
    try:
        check_places(order.quantity, field="quantity", places=asset.precision)
    except ValueError as exc:
        raise StepFailure(Reason.INVALID_QUANTITY) from exc
    limit = value_limit(snapshot, order.quote_currency, at, limits)
    if limit is None:
        raise StepFailure(Reason.FX_RATE_STALE)
    if order_value(order.quantity, asset.price) > limit:
        raise StepFailure(Reason.ORDER_VALUE_LIMIT)
    rounding = buy_cost if order.order_type.is_buy else sell_proceeds
    amount = rounding(order.quantity, asset.price, unit_of(order))
    if amount < unit_of(order):
        raise StepFailure(Reason.ORDER_TOO_SMALL)
    return asset.price, amount


def paying(
    snapshot: Snapshot, order: Order, total: Decimal, at: datetime, limits: Limits
) -> dict[str, object]:
    """A buy paid in another currency: how much of it the total costs, at what rate (the
    pay currency sold for exactly the total, rounded up: against the customer)."""
    pay = order.pay_currency
    if pay is None or pay == order.quote_currency:
        return {}
    try:
        terms = quote(
            snapshot.rates,
            pay,
            order.quote_currency,
            spread_percent=limits.fx_spread_percent,
            now=at,
            max_age=limits.fx_max_age,
            ahead=limits.rate_ahead,
        )
    except RateUnavailable as exc:
        raise StepFailure(exc.reason) from exc
    paid = terms.sold_for(total)
    if paid >= CEILING:  # the value limit caps the total, not what it costs at any rate
        raise StepFailure(Reason.ORDER_VALUE_LIMIT)
    return {
        "paid_amount": paid,
        "pay_rate": terms.rate,
        "pay_spread_percent": terms.spread_percent,
    }


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
        price, amount = priced(snapshot, pending, at, limits)
        paid = paying(snapshot, pending, amount, at, limits)
    except StepFailure as exc:
        return fail(exc.code)
    processing = moved(
        pending,
        at,
        Step.DEBITED,
        status=OrderStatus.PROCESSING,
        price=price,
        total_amount=amount,
        **paid,
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
