"""Trading verbs: buy, sell, deposit, withdraw, orders, balance, portfolio."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from order_processor.cli.common import print_json, queue_url, with_clients
from order_processor.config import QueueKind, Settings
from order_processor.dependencies import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_dao,
    get_balance_dao,
    get_order_dao,
    get_token_manager,
)
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.exceptions import OrderNotFoundException
from order_processor.messaging.commands import AnyCommand
from order_processor.messaging.producer import CommandFactory, Producer
from order_processor.store.portfolio import load_portfolio


def register(verbs: Any) -> None:
    for side in ("buy", "sell"):
        verb = verbs.add_parser(side, help=f"place a market {side} order")
        verb.add_argument("username")
        verb.add_argument("asset_id")
        verb.add_argument("quantity")
        verb.add_argument("--order-id", help="idempotency key (default: a new id)")
        verb.add_argument("--wait", action="store_true", help="wait until the order is final")
        verb.add_argument("--timeout", type=float, default=30.0)
        verb.set_defaults(run=cmd_order, side=side)
    for kind in ("deposit", "withdraw"):
        verb = verbs.add_parser(kind, help=f"{kind} USD")
        verb.add_argument("username")
        verb.add_argument("amount")
        verb.set_defaults(run=cmd_funds, kind=kind)
    orders = verbs.add_parser("orders", help="list or show orders")
    which = orders.add_subparsers(dest="which", required=True)
    listing = which.add_parser("list", help="a user's orders, newest first")
    listing.add_argument("username")
    listing.add_argument("--status", type=OrderStatus)
    listing.add_argument("--asset")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--cursor")
    listing.set_defaults(run=cmd_orders_list)
    show = which.add_parser("show", help="one order")
    show.add_argument("order_id")
    show.set_defaults(run=cmd_orders_show)
    for name, run in (("balance", cmd_balance), ("portfolio", cmd_portfolio)):
        verb = verbs.add_parser(name, help=f"a user's {name}")
        verb.add_argument("username")
        verb.set_defaults(run=run)


async def send(settings: Settings, clients: AwsClients, command: AnyCommand) -> None:
    url = await queue_url(clients, settings.resources().commands_queue.name)
    await Producer(clients.sqs, url, fifo=settings.queue_kind is QueueKind.FIFO).send(command)


def cmd_order(args: argparse.Namespace, settings: Settings) -> int:
    order_type = OrderType.MARKET_BUY if args.side == "buy" else OrderType.MARKET_SELL
    request = OrderCreate(order_type=order_type, asset_id=args.asset_id, quantity=args.quantity)
    command = CommandFactory(get_token_manager(settings)).place_order(
        args.username, request, order_id=args.order_id
    )

    async def action(clients: AwsClients) -> int:
        await send(settings, clients, command)
        print(command.payload.order_id, flush=True)
        if not args.wait:
            return 0
        order = await wait_for_order(clients, command.payload.order_id, args.timeout)
        print_json(order.response())
        return 0 if order.status is OrderStatus.COMPLETED else 1

    return with_clients(settings, action)


async def wait_for_order(clients: AwsClients, order_id: str, seconds: float) -> Order:
    """Poll until the order is final; a rejected command never stores one (timeout)."""
    orders = get_order_dao(clients)
    deadline = time.monotonic() + seconds
    while True:
        try:
            order = await orders.get_order(order_id)
            if order.status.is_terminal:
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
    command = build(args.username, args.amount)

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


def cmd_orders_show(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        print_json((await get_order_dao(clients).get_order(args.order_id)).response())
        return 0

    return with_clients(settings, action)


def cmd_balance(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        print_json(await get_balance_dao(clients).get_balance(args.username))
        return 0

    return with_clients(settings, action)


def cmd_portfolio(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        portfolio = await load_portfolio(
            args.username,
            get_balance_dao(clients),
            get_asset_balance_dao(clients),
            get_asset_dao(clients),
        )
        print_json(portfolio)
        return 0

    return with_clients(settings, action)
