"""The saga's dispatch table: for each command the order worker carries out, the one read
it decides from and the decision. A new command is one entry here plus its decision (a
pure function of the read, the command, the worker's clock and the limits). UpdatePrice
and UpdateRate have no entry: they go to the price-updates queue (the limit matcher)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from order_processor.domain.commands import (
    AnyCommand,
    CancelOrder,
    CommandType,
    Convert,
    Deposit,
    ExecuteOrder,
    ExpireOrder,
    PlaceOrder,
    ResumeOrder,
    Withdraw,
)
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.orders import OrderStatus
from order_processor.domain.ports import Ledger, Snapshot
from order_processor.exceptions import CommandRejected, Reason
from order_processor.saga import orders
from order_processor.saga.convert import convert, sold_id
from order_processor.saga.decision import Decision, Limits
from order_processor.saga.funds import blind_funds, move_funds

C = TypeVar("C")


@dataclass(frozen=True)
class Route(Generic[C]):
    """`blind`: the decision of a command decided from nothing read first (every condition
    it depends on is in its write); it reads only once the write found its id used. A
    blind decision of None: this command must read first after all."""

    read: Callable[[Ledger, C], Awaitable[Snapshot]]
    decide: Callable[[Snapshot, C, datetime, Limits], Decision]
    blind: Callable[[C, datetime, Limits], Decision | None] | None = None


async def read_funds(ledger: Ledger, command: Deposit | Withdraw) -> Snapshot:
    """The record of the command's id, with the currency's rate (the daily limits')."""
    currency = command.payload.currency
    return await ledger.read(command.username, funds_id=command.command_id, currencies=(currency,))


async def read_conversion(ledger: Ledger, command: Convert) -> Snapshot:
    """The conversion's first record (a redelivery's), with both currencies' rates."""
    payload = command.payload
    return await ledger.read(
        command.username,
        funds_id=sold_id(command.command_id),
        currencies=(payload.sell, payload.buy),
    )


async def read_placement(ledger: Ledger, command: PlaceOrder) -> Snapshot:
    """The order (a redelivery's) and its asset, with the rate of the currency it pays in;
    read again with its quote currency's rate when that is not the base."""
    payload = command.payload
    paying = {payload.pay_currency} - {None, BASE_CURRENCY}
    snapshot = await ledger.read(
        command.username,
        order_id=payload.order_id,
        asset_id=payload.asset_id,
        currencies=sorted(c for c in paying if c),
    )
    quoted = snapshot.asset.quote_currency if snapshot.asset else BASE_CURRENCY
    if quoted == BASE_CURRENCY or quoted in paying:
        return snapshot
    return await ledger.read(
        command.username,
        order_id=payload.order_id,
        asset_id=payload.asset_id,
        currencies=sorted({quoted, *(c for c in paying if c)}),
    )


async def read_order(ledger: Ledger, command: CancelOrder | ExpireOrder | ResumeOrder) -> Snapshot:
    """Priced only to take on an order left PENDING."""
    payload = command.payload
    return await _read_order(ledger, command.username, payload.order_id, None, PRICED_TO_RESUME)


async def read_execution(ledger: Ledger, command: ExecuteOrder) -> Snapshot:
    """Priced to execute a QUEUED order (or to take on one left PENDING)."""
    payload = command.payload
    return await _read_order(
        ledger, command.username, payload.order_id, payload.asset_id, PRICED_TO_EXECUTE
    )


PRICED_TO_RESUME = frozenset({OrderStatus.PENDING})
PRICED_TO_EXECUTE = frozenset({OrderStatus.PENDING, OrderStatus.QUEUED})


async def _read_order(
    ledger: Ledger,
    username: str,
    order_id: str,
    asset_id: str | None,
    priced: frozenset[OrderStatus],
) -> Snapshot:
    """The order, read with the asset the command named (if any). An order that needs a
    price (its status is in `priced`) is priced by its own asset, whatever a command
    names: when the command named none or another, read again with it."""
    snapshot = await ledger.read(username, order_id=order_id, asset_id=asset_id)
    order = snapshot.order
    if order is None or order.status not in priced:
        return snapshot
    quoted = {order.quote_currency, order.pay_currency} - {None, BASE_CURRENCY}
    if not quoted and snapshot.asset is not None and snapshot.asset.asset_id == order.asset_id:
        return snapshot
    return await ledger.read(
        username,
        order_id=order.order_id,
        asset_id=order.asset_id,
        currencies=sorted(c for c in quoted if c),
    )


FUNDS = Route(read_funds, move_funds, blind=blind_funds)
ROUTES: dict[CommandType, Route[Any]] = {
    CommandType.PLACE_ORDER: Route(read_placement, orders.place_order),
    CommandType.CANCEL_ORDER: Route(read_order, orders.cancel_order),
    CommandType.EXECUTE_ORDER: Route(read_execution, orders.execute_order),
    CommandType.EXPIRE_ORDER: Route(read_order, orders.expire_order),
    CommandType.RESUME_ORDER: Route(read_order, orders.resume_order),
    CommandType.DEPOSIT: FUNDS,
    CommandType.WITHDRAW: FUNDS,
    CommandType.CONVERT: Route(read_conversion, convert),
}


def route_of(command: AnyCommand) -> Route[Any]:
    route = ROUTES.get(command.type)
    if route is None:
        raise CommandRejected(
            Reason.UNSUPPORTED_COMMAND, f"{command.type} goes to the price-updates queue"
        )
    return route
