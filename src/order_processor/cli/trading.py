"""Trading verbs: buy, sell, deposit, withdraw, cancel, orders."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from typing import Any

from order_processor.bootstrap import (
    AwsClients,
    get_order_dao,
    get_token_manager,
)
from order_processor.cli.common import print_json, with_clients
from order_processor.config import QueueKind, Settings
from order_processor.domain.base import utc_now
from order_processor.domain.commands import AnyCommand
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.exceptions import OrderNotFoundException
from order_processor.messaging.producer import CommandFactory, Producer
from order_processor.ops.insight import order_book


def register(verbs: Any) -> None:
    for side in ("buy", "sell"):
        verb = verbs.add_parser(side, help=f"place a market {side} order")
        verb.add_argument("username")
        verb.add_argument("asset_id")
        verb.add_argument("quantity")
        verb.add_argument("--order-id", help="idempotency key (default: a new id)")
        kinds = verb.add_mutually_exclusive_group()
        kinds.add_argument("--limit", help="a limit order at this price (default: market)")
        kinds.add_argument(
            "--stop", help=f"a stop order: {'rises' if side == 'buy' else 'falls'} to this price"
        )
        kinds.add_argument(
            "--take-profit",
            help=f"a take-profit order: {'falls' if side == 'buy' else 'rises'} to this price",
        )
        kinds.add_argument(
            "--trail", help="a trailing stop, by an amount (250) or a percentage (5%%)"
        )
        verb.add_argument(
            "--expires-in",
            type=parse_duration,
            help="limit, stop, take-profit and trailing orders: 90s, 30m, 12h, 7d (default 30d)",
        )
        if side == "buy":
            verb.add_argument(
                "--pay-in",
                metavar="CURRENCY",
                help="a market buy paid from this currency's balance, converted at the rate "
                "of the moment in the same transaction (default: the asset's quote currency)",
            )
        verb.add_argument("--wait", action="store_true", help="wait until the order is final")
        verb.add_argument("--timeout", type=float, default=30.0)
        verb.set_defaults(run=cmd_order, side=side)
    for kind in ("deposit", "withdraw"):
        verb = verbs.add_parser(kind, help=f"{kind} an amount of a currency (USD by default)")
        verb.add_argument("username")
        verb.add_argument("amount", help="to the currency's minor unit")
        verb.add_argument("--currency", default=BASE_CURRENCY, help=f"default {BASE_CURRENCY}")
        verb.set_defaults(run=cmd_funds, kind=kind)
    cancel = verbs.add_parser("cancel", help="cancel a QUEUED limit, stop or trailing order")
    cancel.add_argument("order_id")
    cancel.set_defaults(run=cmd_cancel)
    orders = verbs.add_parser("orders", help="list or show orders")
    which = orders.add_subparsers(dest="which", required=True)
    listing = which.add_parser("list", help="a user's orders, newest first")
    listing.add_argument("username")
    listing.add_argument("--status", type=OrderStatus)
    listing.add_argument("--asset")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--cursor")
    listing.set_defaults(run=cmd_orders_list)
    book = which.add_parser(
        "book", help="open limit orders of an asset, best price first, and its waiting stops"
    )
    book.add_argument("asset_id")
    book.set_defaults(run=cmd_orders_book)
    show = which.add_parser("show", help="one order")
    show.add_argument("order_id")
    show.set_defaults(run=cmd_orders_show)


async def send(settings: Settings, clients: AwsClients, command: AnyCommand) -> None:
    url = await clients.queue_url(settings.resources().commands_queue.name)
    await Producer(clients.sqs, url, fifo=settings.queue_kind is QueueKind.FIFO).send(command)


def parse_duration(text: str) -> timedelta:
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and s, m, h or d (30m, 7d)")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def order_request(args: argparse.Namespace) -> OrderCreate:
    side = "BUY" if args.side == "buy" else "SELL"
    fields: dict[str, Any] = {}
    if args.limit is not None:
        kind, fields["limit_price"] = f"LIMIT_{side}", args.limit
    elif args.stop is not None:
        kind, fields["stop_price"] = f"STOP_{side}", args.stop
    elif args.take_profit is not None:
        kind, fields["stop_price"] = f"TAKE_PROFIT_{side}", args.take_profit
    elif args.trail is not None:
        kind = f"TRAILING_STOP_{side}"
        trail = str(args.trail).strip()
        if trail.endswith("%"):
            fields["trail_percent"] = trail[:-1]
        else:
            fields["trail_amount"] = trail
    else:
        if args.expires_in is not None:
            raise argparse.ArgumentTypeError(
                "--expires-in needs --limit, --stop, --take-profit or --trail"
            )
        kind = f"MARKET_{side}"
    if args.expires_in:
        fields["expires_at"] = utc_now() + args.expires_in
    if getattr(args, "pay_in", None):
        fields["pay_currency"] = args.pay_in
    return OrderCreate.model_validate(
        {"order_type": OrderType(kind), "asset_id": args.asset_id, "quantity": args.quantity}
        | fields
    )


def cmd_order(args: argparse.Namespace, settings: Settings) -> int:
    request = order_request(args)
    command = CommandFactory(get_token_manager(settings)).place_order(
        args.username, request, order_id=args.order_id
    )

    async def action(clients: AwsClients) -> int:
        await send(settings, clients, command)
        print(command.payload.order_id, flush=True)
        if not args.wait:
            return 0
        order = await wait_for_order(
            clients,
            command.payload.order_id,
            args.timeout,
            settle_on_queued=request.order_type.rests,
        )
        print_json(order.response())
        return 0 if order.status in {OrderStatus.COMPLETED, OrderStatus.QUEUED} else 1

    return with_clients(settings, action)


async def wait_for_order(
    clients: AwsClients, order_id: str, seconds: float, *, settle_on_queued: bool = False
) -> Order:
    """Poll until the order is final (or QUEUED, for a limit order); a rejected command
    never stores one (timeout)."""
    orders = get_order_dao(clients)
    deadline = time.monotonic() + seconds
    while True:
        try:
            order = await orders.get_order(order_id)
            if order.status.is_terminal or (
                settle_on_queued and order.status is OrderStatus.QUEUED
            ):
                return order
        except OrderNotFoundException:
            pass
        if time.monotonic() > deadline:
            raise OrderNotFoundException(
                f"order {order_id} is not final after {seconds:.0f} s "
                "(a rejected command stores no order: see `order-processor events tail`)"
            )
        await asyncio.sleep(0.2)


def cmd_funds(args: argparse.Namespace, settings: Settings) -> int:
    factory = CommandFactory(get_token_manager(settings))
    build = factory.deposit if args.kind == "deposit" else factory.withdraw
    command = build(args.username, args.amount, currency=args.currency)

    async def action(clients: AwsClients) -> int:
        await send(settings, clients, command)
        print(command.command_id)
        return 0

    return with_clients(settings, action)


def cmd_orders_list(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        orders = get_order_dao(clients)
        if args.status:
            page = await orders.get_orders_by_user_and_status(
                args.username, args.status, limit=args.limit, cursor=args.cursor
            )
        elif args.asset:
            page = await orders.get_orders_by_user_and_asset(
                args.username, args.asset, limit=args.limit, cursor=args.cursor
            )
        else:
            page = await orders.get_orders_by_user(
                args.username, limit=args.limit, cursor=args.cursor
            )
        print_json(
            {
                "orders": [o.response().model_dump(mode="json") for o in page.items],
                "next_cursor": page.next_cursor,
            }
        )
        return 0

    return with_clients(settings, action)


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        order = await get_order_dao(clients).get_order(args.order_id)
        command = CommandFactory(get_token_manager(settings)).cancel(order.username, order.order_id)
        await send(settings, clients, command)
        print(command.command_id)
        return 0

    return with_clients(settings, action)


def cmd_orders_book(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        print_json(await order_book(get_order_dao(clients), args.asset_id))
        return 0

    return with_clients(settings, action)


def cmd_orders_show(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        print_json((await get_order_dao(clients).get_order(args.order_id)).response())
        return 0

    return with_clients(settings, action)
