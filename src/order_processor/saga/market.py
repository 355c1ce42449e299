"""The market order saga.

    PENDING ──debit──▶ PROCESSING ──credit──▶ COMPLETED
       │                   │
       └──▶ FAILED         └──refund──▶ FAILED (compensated)

A buy debits USD (ORDER_PAYMENT) then credits the asset (BUY); a sell debits the asset
(SELL) then credits USD (ORDER_SALE). Each arrow is one TransactWriteItems: the fence, the
order's new state conditioned on the state read (status and sequence: the step marker),
the balance change and its transaction record. A step therefore runs at most once, and a
redelivered command resumes from whatever state is stored.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import structlog

from order_processor.domain.assets import Asset, AssetTransactionType
from order_processor.domain.balances import TransactionType
from order_processor.domain.events import order_event
from order_processor.domain.money import buy_cost, check_places, order_value, sell_proceeds
from order_processor.domain.orders import Order, OrderStatus
from order_processor.exceptions import AssetNotFoundException, OrderProcessorError
from order_processor.saga.context import SagaContext, StepRefused, commit
from order_processor.saga.ledger import asset_parts, asset_record, usd_parts, usd_record
from order_processor.store.lock import Lease
from order_processor.store.orders import transition_put

MINIMUM_NOTIONAL = Decimal("0.01")


async def run_market_order(
    context: SagaContext, lease: Lease, order: Order, asset: Asset | None = None
) -> Order:
    """Advance the order step by step until it is terminal."""
    while not order.status.is_terminal:
        if order.status is OrderStatus.PENDING:
            order = await _debit(context, lease, order, asset)
        elif order.status is OrderStatus.PROCESSING:
            order = await _credit(context, lease, order)
        else:
            raise AssertionError(f"a market order cannot be {order.status}")
    return order


async def transition(
    context: SagaContext,
    lease: Lease,
    order: Order,
    step: str,
    parts: list[tuple[str, dict[str, Any]]],
    **changes: Any,
) -> Order:
    """Commit one step (order state + its parts) and publish the new state's event."""
    updated = order.evolve(
        **changes, step=step, sequence=order.sequence + 1, updated_at=context.clock()
    )
    order_part = transition_put(context.orders.table, order, updated, {order.status})
    return await commit_step(
        context, lease, updated, step, [("order", {"Put": order_part}), *parts]
    )


async def commit_step(
    context: SagaContext,
    lease: Lease,
    updated: Order,
    step: str,
    parts: list[tuple[str, dict[str, Any]]],
) -> Order:
    """Every step the same way: commit, then publish the new state's event; with the
    fault hooks around the commit, the step's context in the logs and its latency."""
    structlog.contextvars.bind_contextvars(order_id=updated.order_id, step=step)
    started = time.perf_counter()
    context.faults.before(step)
    await commit(context, lease, parts)
    context.faults.after_commit(step)
    await context.publisher.publish(order_event(updated))
    context.metrics.observe("saga_step_seconds", time.perf_counter() - started, step=step)
    if updated.status is OrderStatus.FAILED:
        context.metrics.inc("orders_failed_total", reason=updated.failure_reason or "unknown")
    return updated


async def fail(context: SagaContext, lease: Lease, order: Order, reason: str) -> Order:
    return await transition(
        context, lease, order, "failed", [], status=OrderStatus.FAILED, failure_reason=reason
    )


async def _debit(context: SagaContext, lease: Lease, order: Order, asset: Asset | None) -> Order:
    try:
        price, amount = await _price_and_amount(context, order, asset)
    except StepFailure as exc:
        return await fail(context, lease, order, exc.code)
    priced = order.model_copy(update={"price": price, "total_amount": amount})
    if order.order_type.is_buy:
        parts = usd_parts(context, [usd_record(priced, TransactionType.ORDER_PAYMENT, amount)])
    else:
        parts = asset_parts(context, [asset_record(priced, AssetTransactionType.SELL)])
    try:
        return await transition(
            context,
            lease,
            order,
            "debited",
            parts,
            status=OrderStatus.PROCESSING,
            price=price,
            total_amount=amount,
        )
    except StepRefused as exc:
        reason = "INSUFFICIENT_BALANCE" if exc.part == "balance" else "INSUFFICIENT_ASSET_BALANCE"
        return await fail(context, lease, order, reason)


async def _price_and_amount(
    context: SagaContext, order: Order, asset: Asset | None
) -> tuple[Decimal, Decimal]:
    """The price is the inventory's, never the producer's; limits checked on it."""
    try:
        asset = asset or await context.assets.get_asset(order.asset_id)
    except AssetNotFoundException as exc:
        raise StepFailure("ASSET_NOT_FOUND") from exc
    if not asset.is_active:
        raise StepFailure("ASSET_NOT_TRADABLE")
    try:
        check_places(order.quantity, field="quantity", places=asset.precision)
    except ValueError as exc:
        raise StepFailure("INVALID_QUANTITY") from exc
    if order_value(order.quantity, asset.price) > context.limits.max_order_value:
        raise StepFailure("ORDER_VALUE_LIMIT")
    rounding = buy_cost if order.order_type.is_buy else sell_proceeds
    amount = rounding(order.quantity, asset.price)
    if amount < MINIMUM_NOTIONAL:
        raise StepFailure("ORDER_TOO_SMALL")
    return asset.price, amount


class StepFailure(OrderProcessorError):
    """A permanent reason an order cannot go on; `code` becomes its failure_reason."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code  # type: ignore[misc]


async def _credit(context: SagaContext, lease: Lease, order: Order) -> Order:
    assert order.total_amount is not None
    if order.order_type.is_buy:
        parts = asset_parts(context, [asset_record(order, AssetTransactionType.BUY)])
    else:
        parts = usd_parts(
            context, [usd_record(order, TransactionType.ORDER_SALE, order.total_amount)]
        )
    try:
        return await transition(
            context, lease, order, "completed", parts, status=OrderStatus.COMPLETED
        )
    except OrderProcessorError as exc:
        if exc.retryable:
            raise
        return await _compensate(context, lease, order, exc.code)


async def _compensate(context: SagaContext, lease: Lease, order: Order, reason: str) -> Order:
    """Undo the debit: refund the USD (ORDER_REFUND) or give back the asset (REFUND)."""
    assert order.total_amount is not None
    if order.order_type.is_buy:
        parts = usd_parts(
            context, [usd_record(order, TransactionType.ORDER_REFUND, order.total_amount)]
        )
    else:
        parts = asset_parts(context, [asset_record(order, AssetTransactionType.REFUND)])
    return await transition(
        context, lease, order, "refunded", parts, status=OrderStatus.FAILED, failure_reason=reason
    )
