"""PlaceOrder: accept the order once (idempotent by order id), then run its saga."""

from __future__ import annotations

from order_processor.domain.money import check_places
from order_processor.domain.orders import Order
from order_processor.exceptions import (
    AssetNotFoundException,
    OrderNotFoundException,
    UserNotFoundException,
)
from order_processor.messaging.commands import CommandRejected, PlaceOrder
from order_processor.messaging.events import order_event
from order_processor.saga.context import SagaContext, commit
from order_processor.saga.market import run_market_order
from order_processor.store.lock import Lease
from order_processor.store.orders import order_item

REQUEST_FIELDS = ("order_type", "asset_id", "quantity", "limit_price", "expires_at")


async def place_order(context: SagaContext, lease: Lease, command: PlaceOrder) -> Order:
    order = await _existing(context, command)
    if order is None:
        order = await _accept(context, lease, command)
    else:
        # A redelivery: publish the stored state again (same event id), then resume.
        await context.publisher.publish(order_event(order))
    if order.status.is_terminal:
        return order
    return await run_market_order(context, lease, order)


async def _existing(context: SagaContext, command: PlaceOrder) -> Order | None:
    try:
        order = await context.orders.get_order(command.payload.order_id)
    except OrderNotFoundException:
        return None
    requested = command.payload.model_dump(include=set(REQUEST_FIELDS))
    if (
        order.username != command.username
        or order.model_dump(include=set(REQUEST_FIELDS)) != requested
    ):
        raise CommandRejected(
            "CONFLICTING_DUPLICATE",
            f"order {order.order_id} exists with a different request; it was not executed again",
            order_id=order.order_id,
        )
    return order


async def _accept(context: SagaContext, lease: Lease, command: PlaceOrder) -> Order:
    await _validate(context, command)
    now = context.clock()
    order = Order.place(command.username, command.payload, order_id=command.payload.order_id)
    order = order.evolve(step="accepted", sequence=1, created_at=now, updated_at=now)
    put = {
        "TableName": context.orders.table,
        "Item": order_item(order),
        "ConditionExpression": "attribute_not_exists(PK)",
    }
    await commit(context, lease, [("order", {"Put": put})])
    context.faults.after_commit("accepted")
    await context.publisher.publish(order_event(order))
    return order


async def _validate(context: SagaContext, command: PlaceOrder) -> None:
    """What makes a command wrong rather than an order unlucky: rejected, not stored."""
    request = command.payload
    if request.order_type.is_limit:
        raise CommandRejected(
            "UNSUPPORTED_ORDER_TYPE", f"{request.order_type} is not supported yet"
        )
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
