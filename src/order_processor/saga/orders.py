"""Order commands: PlaceOrder (accept once, idempotent by order id, then run the saga),
CancelOrder, and the system's ExecuteOrder, ExpireOrder (limit orders) and ResumeOrder
(recovery). Whatever the command, an order it finds mid-saga (PENDING or PROCESSING: a
worker died, or a message was lost) is first taken as far as it can go, by the same steps
under the same lock; a step never runs twice, because each is conditioned on the order's
stored state."""

from __future__ import annotations

import logging
from datetime import timedelta

from order_processor.domain.assets import Asset
from order_processor.domain.commands import (
    CancelOrder,
    CommandRejected,
    ExecuteOrder,
    ExpireOrder,
    PlaceOrder,
    ResumeOrder,
)
from order_processor.domain.events import order_event
from order_processor.domain.money import check_places
from order_processor.domain.orders import Order, OrderStatus
from order_processor.exceptions import (
    AssetNotFoundException,
    OrderNotFoundException,
    UserNotFoundException,
)
from order_processor.saga.context import SagaContext
from order_processor.saga.limit import (
    close_limit_order,
    execute_limit_order,
    is_due,
    queue_limit_order,
)
from order_processor.saga.market import commit_step, fail, run_market_order
from order_processor.store.lock import Lease
from order_processor.store.orders import order_item

log = logging.getLogger(__name__)
REQUEST_FIELDS = ("order_type", "asset_id", "quantity", "limit_price")
DEFAULT_EXPIRY = timedelta(days=30)
MID_SAGA = frozenset({OrderStatus.PENDING, OrderStatus.PROCESSING})


async def place_order(context: SagaContext, lease: Lease, command: PlaceOrder) -> Order:
    """AWS calls of a new market order, each for a reason: GetItem order (a redelivery
    must resume, not validate again), GetItem user and asset (validation; the asset read
    also prices the debit), then per step one TransactWriteItems (fence, order, ledger)
    and one Publish (its event): accepted, debited, completed."""
    order = await _existing(context, command)
    if order is None:
        order, asset = await _accept(context, lease, command)
        return await advance(context, lease, order, asset)
    if order.status in MID_SAGA:
        return await resume(context, lease, order)
    # A redelivery: publish the stored state again (same event id), then go on.
    await context.publisher.publish(order_event(order))
    return await advance(context, lease, order)


async def advance(
    context: SagaContext, lease: Lease, order: Order, asset: Asset | None = None
) -> Order:
    """Take the order as far as it can go now, from whatever state is stored; `asset`,
    read a moment ago by validation, saves reading it again."""
    if order.status is OrderStatus.PENDING and order.order_type.is_limit:
        order = await queue_limit_order(context, lease, order)
    if order.status is OrderStatus.QUEUED:
        return await execute_limit_order(context, lease, order, asset)  # marketable at once?
    if order.status.is_terminal:
        return order
    return await run_market_order(context, lease, order, asset)


async def resume(context: SagaContext, lease: Lease, order: Order) -> Order:
    """Finish what a crashed worker or a lost message left mid-saga; other states as is."""
    if order.status not in MID_SAGA:
        return order
    log.info("resuming order %s from %s (step %s)", order.order_id, order.status, order.step)
    context.metrics.inc("orders_resumed_total", status=order.status.value)
    # The crash may have come between the step's commit and its event: publish it again
    # (same event id) before going on, as a redelivered PlaceOrder does.
    await context.publisher.publish(order_event(order))
    if order.status is OrderStatus.PENDING and not await _user_active(context, order.username):
        # Nothing moved yet: what placing checked is checked again (disabled meanwhile).
        return await fail(context, lease, order, "USER_INACTIVE")
    return await advance(context, lease, order)


async def _user_active(context: SagaContext, username: str) -> bool:
    try:
        return (await context.users.get_user_by_username(username)).is_active
    except UserNotFoundException:
        return False


async def cancel_order(context: SagaContext, lease: Lease, command: CancelOrder) -> Order:
    """Only a QUEUED order can be cancelled; cancelling it again is answered with its
    CANCELLED event again."""
    order = await _owned_order(context, command.payload.order_id, command.username)
    order = await resume(context, lease, order)
    if order.status is OrderStatus.QUEUED:
        return await close_limit_order(context, lease, order, OrderStatus.CANCELLED)
    if order.status is OrderStatus.CANCELLED:
        return order  # cancelled already: its event went out again above
    raise CommandRejected(
        "ORDER_NOT_CANCELLABLE",
        f"order {order.order_id} is {order.status}; only a QUEUED order can be cancelled",
        order_id=order.order_id,
    )


async def execute_order(context: SagaContext, lease: Lease, command: ExecuteOrder) -> Order:
    """From the matcher: execute if still QUEUED, still due and still triggered (the
    execution re-checks all of it); an order mid-saga is resumed."""
    order = await _owned_order(context, command.payload.order_id, command.username)
    if order.status in MID_SAGA:
        return await resume(context, lease, order)
    return await advance(context, lease, order)


async def expire_order(context: SagaContext, lease: Lease, command: ExpireOrder) -> Order:
    """From the sweeper: expire a QUEUED order whose expiry has passed by this worker's
    clock (never the sender's: a command dated in the future expires nothing early)."""
    order = await _owned_order(context, command.payload.order_id, command.username)
    order = await resume(context, lease, order)
    if order.status is OrderStatus.QUEUED and is_due(order, context.clock()):
        return await close_limit_order(context, lease, order, OrderStatus.EXPIRED)
    return order


async def resume_order(context: SagaContext, lease: Lease, command: ResumeOrder) -> Order:
    """From the recovery job: an order found PENDING or PROCESSING for too long."""
    order = await _owned_order(context, command.payload.order_id, command.username)
    if order.status in MID_SAGA:
        context.metrics.inc("orders_recovered_total", status=order.status.value)
        log.warning(
            "recovering order %s, %s since %s", order.order_id, order.status, order.updated_at
        )
    return await resume(context, lease, order)


async def _owned_order(context: SagaContext, order_id: str, username: str) -> Order:
    """The order a command addresses. A finished one is answered with its final state's
    event again (same event id): the command that finished it may have crashed between
    its commit and its publish, and this may be that command's redelivery."""
    try:
        order = await context.orders.get_order(order_id, username=username)
    except OrderNotFoundException as exc:
        raise CommandRejected(
            "ORDER_NOT_FOUND", f"order {order_id} not found", order_id=order_id
        ) from exc
    if order.status.is_terminal:
        await context.publisher.publish(order_event(order))
    return order


async def _existing(context: SagaContext, command: PlaceOrder) -> Order | None:
    try:
        order = await context.orders.get_order(command.payload.order_id)
    except OrderNotFoundException:
        return None
    requested = command.payload.model_dump(include=set(REQUEST_FIELDS))
    # An order without an expiry of its own was given the default one: compare only a
    # requested expiry.
    expiry = command.payload.expires_at
    if (
        order.username != command.username
        or order.model_dump(include=set(REQUEST_FIELDS)) != requested
        or (expiry is not None and expiry != order.expires_at)
    ):
        raise CommandRejected(
            "CONFLICTING_DUPLICATE",
            f"order {order.order_id} exists with a different request; it was not executed again",
            order_id=order.order_id,
        )
    return order


async def _accept(context: SagaContext, lease: Lease, command: PlaceOrder) -> tuple[Order, Asset]:
    asset = await _validate(context, command)
    now = context.clock()
    order = Order.place(command.username, command.payload, order_id=command.payload.order_id)
    expiry = order.expires_at
    if order.order_type.is_limit and expiry is None:
        expiry = now + DEFAULT_EXPIRY
    order = order.evolve(
        step="accepted", sequence=1, created_at=now, updated_at=now, expires_at=expiry
    )
    put = {
        "TableName": context.orders.table,
        "Item": order_item(order),
        "ConditionExpression": "attribute_not_exists(PK)",
    }
    return await commit_step(context, lease, order, "accepted", [("order", {"Put": put})]), asset


async def _validate(context: SagaContext, command: PlaceOrder) -> Asset:
    """What makes a command wrong rather than an order unlucky: rejected, not stored."""
    request = command.payload
    try:
        user = await context.users.get_user_by_username(command.username)
    except UserNotFoundException as exc:
        raise CommandRejected("UNKNOWN_USER", f"user {command.username} does not exist") from exc
    if not user.is_active:
        raise CommandRejected("USER_INACTIVE", f"user {user.username} is disabled")
    try:
        asset = await context.assets.get_asset(request.asset_id)
    except AssetNotFoundException as exc:
        raise CommandRejected("UNKNOWN_ASSET", f"asset {request.asset_id} does not exist") from exc
    if not asset.is_active:
        raise CommandRejected("ASSET_NOT_TRADABLE", f"asset {asset.asset_id} is not tradable")
    try:
        check_places(request.quantity, field="quantity", places=asset.precision)
    except ValueError as exc:
        raise CommandRejected("INVALID_QUANTITY", str(exc)) from exc
    if request.expires_at is not None and request.expires_at <= context.clock():
        raise CommandRejected("ALREADY_EXPIRED", "expires_at has passed")
    return asset
