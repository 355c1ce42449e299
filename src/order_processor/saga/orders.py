"""Order commands, decided from what they read: PlaceOrder (accept once, idempotent by
order id), CancelOrder, and the system's ExecuteOrder, ExpireOrder (limit orders) and
ResumeOrder (recovery).

A command that finds its order stored takes it from there: a redelivery re-announces
the stored state (its event again, same id: the crash may have come between the write
and the publish) and goes on; an order a v1 worker left PENDING or PROCESSING is taken
on first, by the same steps, before the command does its own job (`then`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from order_processor.domain.assets import Asset
from order_processor.domain.commands import (
    CancelOrder,
    ExecuteOrder,
    ExpireOrder,
    PlaceOrder,
    ResumeOrder,
)
from order_processor.domain.money import check_places
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.ports import Snapshot
from order_processor.domain.steps import Step
from order_processor.domain.triggers import hold_price, trail_leaves_room, trailed
from order_processor.exceptions import CommandRejected, Reason
from order_processor.saga import limit, market
from order_processor.saga.decision import (
    NOTHING,
    Decision,
    Limits,
    again,
    failed,
    is_live,
    order_write,
)
from order_processor.saga.quotes import require_rates

REQUEST_FIELDS = (
    "order_type",
    "asset_id",
    "quantity",
    "limit_price",
    "trail_amount",
    "trail_percent",
    "pay_currency",
)
DEFAULT_EXPIRY = timedelta(days=30)


def place_order(snapshot: Snapshot, command: PlaceOrder, at: datetime, limits: Limits) -> Decision:
    stored = snapshot.order
    if stored is not None:
        _same_request(stored, command)
        return carry_on(snapshot, stored, at, limits, announce=True)
    _validate(snapshot, command, at, limits)
    assert snapshot.asset is not None  # _validate
    accepted = _accept(command, at, snapshot.asset, limits)
    go = limit.place if accepted.order_type.rests else market.fill
    decision = go(snapshot, accepted, [accepted], at, limits)
    if accepted.order_type.is_trailing and decision.write is not None:
        # Placed only if no price was applied since the one its trail starts from.
        read = (snapshot.asset.asset_id, snapshot.asset.price_command_id)
        decision = replace(decision, write=replace(decision.write, price_read=read))
    return decision


def cancel_order(
    snapshot: Snapshot, command: CancelOrder, at: datetime, limits: Limits
) -> Decision:
    """Only a QUEUED order can be cancelled; cancelling it again answers with its
    CANCELLED event again."""
    order = _owned(snapshot, command.username)
    if is_live(order):
        return carry_on(snapshot, order, at, limits, announce=True, then=True)
    if order.status is OrderStatus.QUEUED:
        return limit.close(snapshot, order, at, OrderStatus.CANCELLED)
    if order.status is OrderStatus.CANCELLED:
        return again(order)
    raise CommandRejected(
        Reason.ORDER_NOT_CANCELLABLE,
        f"order {order.order_id} is {order.status}; only a QUEUED order can be cancelled",
        order_id=order.order_id,
    )


def execute_order(
    snapshot: Snapshot, command: ExecuteOrder, at: datetime, limits: Limits
) -> Decision:
    """From the matcher: execute if still QUEUED, not expired, triggered at the current
    price, within the value limit and its user still active (all re-checked here)."""
    order = _owned(snapshot, command.username)
    if order.status is OrderStatus.QUEUED:
        return limit.execute(snapshot, order, at, limits)
    return carry_on(snapshot, order, at, limits, announce=True)


def expire_order(
    snapshot: Snapshot, command: ExpireOrder, at: datetime, limits: Limits
) -> Decision:
    """From the sweeper: expire a QUEUED order whose expiry has passed by this worker's
    clock (never the sender's: a command dated ahead expires nothing early)."""
    order = _owned(snapshot, command.username)
    if is_live(order):
        return carry_on(snapshot, order, at, limits, announce=True, then=True)
    if order.status is OrderStatus.QUEUED:
        due = limit.is_due(order, at)
        return limit.close(snapshot, order, at, OrderStatus.EXPIRED) if due else NOTHING
    return again(order)


def resume_order(
    snapshot: Snapshot, command: ResumeOrder, at: datetime, limits: Limits
) -> Decision:
    """From the recovery job: an order found PENDING or PROCESSING for too long."""
    order = _owned(snapshot, command.username)
    if order.status is OrderStatus.QUEUED:
        return NOTHING
    return carry_on(snapshot, order, at, limits, announce=True)


def carry_on(
    snapshot: Snapshot,
    order: Order,
    at: datetime,
    limits: Limits,
    *,
    announce: bool,
    then: bool = False,
) -> Decision:
    """Take a stored order as far as it can go now, re-announcing its state first."""
    if order.status.is_terminal:
        return again(order) if announce else NOTHING
    if order.status is OrderStatus.QUEUED:
        moves = limit.execution(snapshot, order, at, limits)
        if moves is None:
            return again(order) if announce else NOTHING
        refused = limit.failing(snapshot, order, at)
        return order_write(snapshot, [order, *moves.states], moves.records, order, refused)
    decision = _resumed(snapshot, order, at, limits)
    return Decision(decision.write, decision.events, decision.refused, then=then)


def _resumed(snapshot: Snapshot, order: Order, at: datetime, limits: Limits) -> Decision:
    """A v1 order left mid-saga. PENDING moved nothing yet: placing's checks again (a user
    disabled since fails it); PROCESSING has been debited: credit it."""
    if order.status is OrderStatus.PROCESSING:
        return market.credit_debited(snapshot, order, at)
    user = snapshot.user
    if user is None or not user.is_active:
        return failed(snapshot, order, [order], at, Reason.USER_INACTIVE)
    go = limit.place if order.order_type.rests else market.fill
    return go(snapshot, order, [order], at, limits)


def _owned(snapshot: Snapshot, username: str) -> Order:
    """The order the command addresses; another user's is reported as not found."""
    order = snapshot.order
    if order is None or order.username != username:
        raise CommandRejected(Reason.ORDER_NOT_FOUND, "order not found")
    return order


def _same_request(order: Order, command: PlaceOrder) -> None:
    fields = set(REQUEST_FIELDS)
    if not order.order_type.is_trailing:
        fields.add("stop_price")  # a trailing stop's is its own, moving
    requested = command.payload.model_dump(include=fields)
    # An order without an expiry of its own was given the default one: compare only a
    # requested expiry.
    expiry = command.payload.expires_at
    if (
        order.username != command.username
        or order.model_dump(include=fields) != requested
        or (expiry is not None and expiry != order.expires_at)
    ):
        raise CommandRejected(
            Reason.CONFLICTING_DUPLICATE,
            f"order {order.order_id} exists with a different request; it was not executed again",
            order_id=order.order_id,
        )


def _accept(command: PlaceOrder, at: datetime, asset: Asset, limits: Limits) -> Order:
    """The order as accepted: a resting one with its expiry (30 days unless asked), a
    trailing stop with its first best price (the market's now), its stop and when that
    price was observed, a buy with the price its hold is sized at."""
    price = asset.price
    order = Order.place(command.username, command.payload, order_id=command.payload.order_id)
    order = order.evolve(issued_at=min(command.issued_at, at), quote_currency=asset.quote_currency)
    kind = order.order_type
    expiry = order.expires_at
    if kind.rests and expiry is None:
        expiry = at + DEFAULT_EXPIRY
    if not trail_leaves_room(kind, price, order.trail_amount, order.trail_percent):
        raise CommandRejected(
            Reason.INVALID_COMMAND, f"the trail leaves no stop below the market price {price}"
        )
    try:
        if kind.is_trailing:
            best, stop = trailed(order, price) or (price, price)
            since = asset.price_as_of
            if since is None or since > at + 2 * limits.clock_skew:
                since = at  # no trustworthy observation time: the placement's own
            order = order.evolve(best_price=best, stop_price=stop, trail_since=since)
        order = order.evolve(hold_price=hold_price(order, limits.stop_slippage_percent))
    except ValueError as exc:  # a stop or hold past what a price can be
        raise CommandRejected(
            Reason.ORDER_VALUE_LIMIT, "the order's stop or hold price is out of range"
        ) from exc
    return order.evolve(
        step=Step.ACCEPTED, sequence=1, created_at=at, updated_at=at, expires_at=expiry
    )


def _validate(snapshot: Snapshot, command: PlaceOrder, at: datetime, limits: Limits) -> None:
    """What makes a command wrong rather than an order unlucky: rejected, not stored. An
    asset quoted in another currency than the base, or an order paid in one, needs that
    currency enabled and its rate fresh."""
    request, user, asset = command.payload, snapshot.user, snapshot.asset
    if user is None:
        raise CommandRejected(Reason.UNKNOWN_USER, f"user {command.username} does not exist")
    if not user.is_active:
        raise CommandRejected(Reason.USER_INACTIVE, f"user {user.username} is disabled")
    if asset is None:
        raise CommandRejected(Reason.UNKNOWN_ASSET, f"asset {request.asset_id} does not exist")
    if not asset.is_active:
        raise CommandRejected(Reason.ASSET_NOT_TRADABLE, f"asset {asset.asset_id} is not tradable")
    try:
        check_places(request.quantity, field="quantity", places=asset.precision)
    except ValueError as exc:
        raise CommandRejected(Reason.INVALID_QUANTITY, str(exc)) from exc
    if request.expires_at is not None and request.expires_at <= at:
        raise CommandRejected(Reason.ALREADY_EXPIRED, "expires_at has passed")
    currencies = {asset.quote_currency, request.pay_currency or asset.quote_currency}
    require_rates(snapshot, currencies, at, limits)
