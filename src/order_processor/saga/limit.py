"""The limit order saga.

    PENDING ──hold──▶ QUEUED ──execute──▶ PROCESSING ──credit──▶ COMPLETED
       │                │ ├──cancel──▶ CANCELLED (hold released)
       └──▶ FAILED      │ └──expire──▶ EXPIRED   (hold released)

A buy holds `quantity x limit` rounded up to the cent (ORDER_HOLD: available → held); a
sell holds the quantity (asset HOLD). While QUEUED the order sits in the sparse
OpenLimitOrders index. Execution re-checks, under the user's lock, that the order is still
QUEUED and that the inventory price triggers it (buy: price ≤ limit; sell: price ≥ limit),
then in one transaction releases the hold and pays at the market price, which is never
worse than the limit: for a buy the difference stays available (the refund of the
difference is the released hold minus the payment). The credit step is the market saga's.

Execution re-checks what placing checked, at the execution price and this worker's clock:
an order past its expiry is never filled, it expires (hold released); an order whose value
at the market price is over the order-value limit, or whose user has been disabled, ends
FAILED (ORDER_VALUE_LIMIT, USER_INACTIVE), its hold released (step `released`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from order_processor.domain.assets import Asset, AssetTransactionType
from order_processor.domain.balances import TransactionType
from order_processor.domain.money import buy_cost, order_value, sell_proceeds
from order_processor.domain.orders import Order, OrderStatus
from order_processor.exceptions import AssetNotFoundException, UserNotFoundException
from order_processor.saga.context import SagaContext, StepRefused
from order_processor.saga.ledger import Part, asset_parts, asset_record, usd_parts, usd_record
from order_processor.saga.market import MINIMUM_NOTIONAL, fail, run_market_order, transition
from order_processor.store.lock import Lease


def hold_amount(order: Order) -> Decimal:
    """What a limit buy sets aside: the most it can cost, rounded up to the cent."""
    assert order.limit_price is not None
    return buy_cost(order.quantity, order.limit_price)


def triggered(order: Order, price: Decimal) -> bool:
    assert order.limit_price is not None
    return price <= order.limit_price if order.order_type.is_buy else price >= order.limit_price


def is_due(order: Order, now: datetime) -> bool:
    return order.expires_at is not None and order.expires_at <= now


def _hold_parts(context: SagaContext, order: Order, release: bool) -> list[Part]:
    if order.order_type.is_buy:
        kind = TransactionType.ORDER_RELEASE if release else TransactionType.ORDER_HOLD
        return usd_parts(context, [usd_record(order, kind, hold_amount(order))])
    asset_kind = AssetTransactionType.RELEASE if release else AssetTransactionType.HOLD
    return asset_parts(context, [asset_record(order, asset_kind)])


async def queue_limit_order(context: SagaContext, lease: Lease, order: Order) -> Order:
    assert order.limit_price is not None
    if order_value(order.quantity, order.limit_price) > context.limits.max_order_value:
        return await fail(context, lease, order, "ORDER_VALUE_LIMIT")
    if sell_proceeds(order.quantity, order.limit_price) < MINIMUM_NOTIONAL:
        return await fail(context, lease, order, "ORDER_TOO_SMALL")
    try:
        return await transition(
            context,
            lease,
            order,
            "held",
            _hold_parts(context, order, release=False),
            status=OrderStatus.QUEUED,
        )
    except StepRefused as exc:
        reason = "INSUFFICIENT_BALANCE" if exc.part == "balance" else "INSUFFICIENT_ASSET_BALANCE"
        return await fail(context, lease, order, reason)


async def execute_limit_order(
    context: SagaContext, lease: Lease, order: Order, asset: Asset | None = None
) -> Order:
    """Execute if the current price triggers the order; otherwise leave it QUEUED."""
    if order.status is not OrderStatus.QUEUED:
        return order
    if is_due(order, context.clock()):
        return await close_limit_order(context, lease, order, OrderStatus.EXPIRED)
    try:
        asset = asset or await context.assets.get_asset(order.asset_id)
    except AssetNotFoundException:
        return order
    if not asset.is_active or not triggered(order, asset.price):
        return order
    refusal = await _refusal(context, order, asset)
    if refusal:
        return await close_limit_order(context, lease, order, OrderStatus.FAILED, reason=refusal)
    price = asset.price
    if order.order_type.is_buy:
        amount = buy_cost(order.quantity, price)
        priced = order.model_copy(update={"price": price, "total_amount": amount})
        parts = usd_parts(
            context,
            [
                usd_record(priced, TransactionType.ORDER_RELEASE, hold_amount(order)),
                usd_record(priced, TransactionType.ORDER_PAYMENT, amount),
            ],
        )
    else:
        amount = sell_proceeds(order.quantity, price)
        priced = order.model_copy(update={"price": price, "total_amount": amount})
        parts = asset_parts(
            context,
            [
                asset_record(priced, AssetTransactionType.RELEASE),
                asset_record(priced, AssetTransactionType.SELL),
            ],
        )
    debited = await transition(
        context,
        lease,
        order,
        "debited",
        parts,
        status=OrderStatus.PROCESSING,
        price=price,
        total_amount=amount,
    )
    return await run_market_order(context, lease, debited)


async def _refusal(context: SagaContext, order: Order, asset: Asset) -> str | None:
    """What placing checked that no longer holds: the order's value at the market price,
    and its user (disabled since it was placed)."""
    if order_value(order.quantity, asset.price) > context.limits.max_order_value:
        return "ORDER_VALUE_LIMIT"
    try:
        user = await context.users.get_user_by_username(order.username)
    except UserNotFoundException:
        return "UNKNOWN_USER"
    return None if user.is_active else "USER_INACTIVE"


async def close_limit_order(
    context: SagaContext,
    lease: Lease,
    order: Order,
    status: OrderStatus,
    reason: str | None = None,
) -> Order:
    """Cancel, expire or fail a QUEUED order: release its hold in the same transaction."""
    step = "released" if status is OrderStatus.FAILED else status.value.lower()
    return await transition(
        context,
        lease,
        order,
        step,
        _hold_parts(context, order, release=True),
        status=status,
        failure_reason=reason,
    )
