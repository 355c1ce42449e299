"""Administrative verbs: users, tokens, assets, prices, the schema, the event stream."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from order_processor.bootstrap import (
    AwsClients,
    get_asset_dao,
    get_order_dao,
    get_token_manager,
    get_user_dao,
)
from order_processor.cli.common import Observation, print_json, wait_until_applied, with_clients
from order_processor.config import Settings
from order_processor.demo.feeds import coingecko_prices, random_walk
from order_processor.domain.assets import AssetCreate, normalise_asset_id
from order_processor.domain.commands import command_schema
from order_processor.domain.events import Event, order_event
from order_processor.domain.users import UserCreate, UserRole
from order_processor.messaging.follower import StatusFollower, follow
from order_processor.messaging.producer import CommandFactory, Producer
from order_processor.messaging.publisher import EventPublisher
from order_processor.security.passwords import PasswordManager

PRICE_WAIT_SECONDS = 10.0
MAX_PRICE_WAIT_SECONDS = 600.0


def register(verbs: Any) -> None:
    users = verbs.add_parser("users", help="manage users")
    which = users.add_subparsers(dest="which", required=True)
    create = which.add_parser("create", help="create a user (password from standard input)")
    create.add_argument("username")
    create.add_argument("--email", required=True)
    create.add_argument("--first-name", default="Demo")
    create.add_argument("--last-name", default="User")
    create.add_argument("--role", type=UserRole, default=UserRole.CUSTOMER)
    create.set_defaults(run=cmd_users_create)
    token = verbs.add_parser("token", help="issue an access token for a user or a service")
    token.add_argument("username", help="a username, or a service (payments, limit-matcher, ...)")
    token.add_argument("--role", default="customer", choices=["customer", "admin", "service"])
    token.add_argument(
        "--minutes",
        type=positive_int,
        help="lifetime (default 30 for customer and admin, the service lifetime for service; "
        "at most ORDER_PROCESSOR_MAX_TOKEN_MINUTES or ORDER_PROCESSOR_SERVICE_TOKEN_MINUTES)",
    )
    token.set_defaults(run=cmd_token)
    assets = verbs.add_parser("assets", help="manage the inventory")
    which = assets.add_subparsers(dest="which", required=True)
    add = which.add_parser("add", help="add a tradable asset")
    add.add_argument("asset_id")
    add.add_argument("--name", required=True)
    add.add_argument("--price", required=True)
    add.add_argument("--precision", type=int, default=8)
    add.add_argument(
        "--quote",
        default="USD",
        metavar="CURRENCY",
        help="the currency its price is in and its orders hold and pay (default USD)",
    )
    add.set_defaults(run=cmd_assets_add)
    price = verbs.add_parser(
        "price", help="send an asset's price to the limit matcher and wait until it applies it"
    )
    price.add_argument("asset_id")
    price.add_argument("price")
    price.add_argument(
        "--wait-seconds",
        type=wait_seconds,
        default=PRICE_WAIT_SECONDS,
        help=f"how long to wait for the matcher (default {PRICE_WAIT_SECONDS:g}; 0: send only)",
    )
    price.set_defaults(run=cmd_price)
    feed = verbs.add_parser("feed", help="send price updates: a random walk or a market-data API")
    feed.add_argument("--assets", required=True, help="comma-separated asset ids (BTC,ETH)")
    feed.add_argument("--interval", type=parse_interval, default=1.0, help="1s, 500ms, 2m")
    feed.add_argument("--ticks", type=int, help="stop after this many updates per asset")
    feed.add_argument("--seed", type=int, help="random walk: reproducible prices")
    feed.add_argument("--source", help="a coins/markets API base URL instead of the random walk")
    feed.add_argument("--coins", help="API coin ids in --assets order (bitcoin,ethereum)")
    feed.set_defaults(run=cmd_feed)
    verbs.add_parser("schema", help="JSON Schema of every command and event").set_defaults(
        run=cmd_schema
    )
    events = verbs.add_parser("events", help="the order event stream")
    which = events.add_subparsers(dest="which", required=True)
    tail = which.add_parser("tail", help="print events from the order-status queue")
    tail.add_argument("--seconds", type=float, default=10.0, help="stop after this long")
    tail.add_argument("--all", action="store_true", help="also print stale and duplicate events")
    tail.set_defaults(run=cmd_events_tail)
    republish = which.add_parser(
        "republish",
        help="publish the event of orders' stored state again (after a purged queue or DLQ)",
    )
    republish.add_argument("order_ids", nargs="*", metavar="ORDER_ID")
    republish.add_argument(
        "--changed-since",
        type=parse_moment,
        help="every order changed at or after this ISO time (a scan: an operator's tool)",
    )
    republish.set_defaults(run=cmd_events_republish)


def cmd_users_create(args: argparse.Namespace, settings: Settings) -> int:
    password = sys.stdin.readline().rstrip("\n")
    request = UserCreate(
        username=args.username,
        email=args.email,
        first_name=args.first_name,
        last_name=args.last_name,
        role=args.role,
    )

    async def action(clients: AwsClients) -> int:
        password_hash = await PasswordManager().hash_password(password)
        user = await get_user_dao(clients).create_user(request, password_hash)  # and its balance
        print_json(user.response())
        return 0

    return with_clients(settings, action)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of minutes, at least 1")
    return int(text)


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    lifetime = timedelta(minutes=args.minutes) if args.minutes else None
    try:
        token = get_token_manager(settings).create_access_token(
            args.username.lower(), role=args.role, expires_delta=lifetime
        )
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"token: {exc}") from exc
    print(token)
    return 0


def cmd_assets_add(args: argparse.Namespace, settings: Settings) -> int:
    request = AssetCreate(
        asset_id=args.asset_id,
        name=args.name,
        price=args.price,
        precision=args.precision,
        quote_currency=args.quote,
    )

    async def action(clients: AwsClients) -> int:
        print_json(await get_asset_dao(clients).create_asset(request))
        return 0

    return with_clients(settings, action)


def wait_seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= MAX_PRICE_WAIT_SECONDS:  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_PRICE_WAIT_SECONDS:g}")
    return value


def cmd_price(args: argparse.Namespace, settings: Settings) -> int:
    """The price goes the one way every price goes: an UpdatePrice to the limit matcher,
    which orders it among the feed's, moves the trailing stops and matches the book. Only
    the matcher writes the inventory's price, by the clocks admission trusts; the CLI then
    waits until it has (its command id stored with the price) and prints the asset."""
    update = CommandFactory(get_token_manager(settings)).update_price(args.asset_id, args.price)

    async def action(clients: AwsClients) -> int:
        await (await price_producer_for(settings, clients)).send(update)
        if args.wait_seconds <= 0:
            print(update.command_id)
            return 0
        assets = get_asset_dao(clients)

        async def stored() -> Observation:
            asset = await assets.get_asset(args.asset_id)
            return Observation(asset, asset.price_command_id, asset.price_as_of)

        return await wait_until_applied(update, stored, args.wait_seconds, "price")

    return with_clients(settings, action)


async def price_producer_for(settings: Settings, clients: AwsClients) -> Producer:
    return Producer(
        clients.sqs,
        await clients.queue_url(settings.resources().price_updates_queue.name),
        fifo=False,
    )


def parse_interval(text: str) -> float:
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * factor
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise argparse.ArgumentTypeError(f"{text!r}: use seconds, or 500ms, 1s, 2m")


def cmd_feed(args: argparse.Namespace, settings: Settings) -> int:
    asset_ids = [normalise_asset_id(a) for a in args.assets.split(",") if a.strip()]
    factory = CommandFactory(get_token_manager(settings))

    async def action(clients: AwsClients) -> int:
        producer = await price_producer_for(settings, clients)
        ticks = prices_source(args, asset_ids, clients)
        count = 0
        async for prices in ticks:
            await producer.send_batch([factory.update_price(a, p) for a, p in prices.items()])
            print(json.dumps({a: format(p, "f") for a, p in prices.items()}), flush=True)
            count += 1
            if args.ticks is not None and count >= args.ticks:
                return 0
            await asyncio.sleep(args.interval)
        return 0

    return with_clients(settings, action)


async def prices_source(
    args: argparse.Namespace, asset_ids: list[str], clients: AwsClients
) -> AsyncIterator[dict[str, Decimal]]:
    if args.source:
        coins = (args.coins or ",".join(a.lower() for a in asset_ids)).split(",")
        mapping = dict(zip(asset_ids, coins, strict=True))
        while True:
            yield await asyncio.to_thread(coingecko_prices, args.source, mapping)
    assets = get_asset_dao(clients)
    start = {a: (await assets.get_asset(a)).price for a in asset_ids}
    for prices in random_walk(start, seed=args.seed):
        yield prices


def cmd_schema(_: argparse.Namespace, __: Settings) -> int:
    print_json({"commands": command_schema(), "events": Event.model_json_schema(by_alias=True)})
    return 0


def parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: an ISO time, e.g. 2026-11-28T07:00Z") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone (Z or +00:00)")
    return moment


def cmd_events_republish(args: argparse.Namespace, settings: Settings) -> int:
    if not args.order_ids and args.changed_since is None:
        raise argparse.ArgumentTypeError("give ORDER_IDs or --changed-since")

    async def action(clients: AwsClients) -> int:
        orders = get_order_dao(clients)
        queue = await clients.queue_url(settings.resources().commands_queue.name)
        publisher = EventPublisher(clients.sns, await clients.topic_arn(queue))
        found = [await orders.get_order(order_id) for order_id in args.order_ids]
        if args.changed_since is not None:
            found += await orders.changed_since(args.changed_since)
        for order in found:
            await publisher.publish([order_event(order)])
            print(f"{order.order_id} {order.status} #{order.sequence}")
        return 0

    return with_clients(settings, action)


def cmd_events_tail(args: argparse.Namespace, settings: Settings) -> int:
    deadline = time.monotonic() + args.seconds

    def show(event: Event, applied: bool) -> None:
        if applied or args.all:
            print(event.body(), flush=True)

    async def action(clients: AwsClients) -> int:
        url = await clients.queue_url(settings.resources().order_status_queue.name)
        await follow(
            clients.sqs, url, StatusFollower(), show, until=lambda: time.monotonic() > deadline
        )
        return 0

    return with_clients(settings, action)
