"""`order-processor convert`: a Convert signed as the user, and with `--wait` its
outcome: the amounts, the rate and the spread, or the rejection's reason."""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from typing import Any

from order_processor.bootstrap import AwsClients, get_balance_dao, get_token_manager
from order_processor.cli.common import print_json, with_clients
from order_processor.cli.failures import ExitStatus
from order_processor.cli.trading import send
from order_processor.config import Settings
from order_processor.domain.balances import BalanceTransaction
from order_processor.domain.base import record_id
from order_processor.domain.commands import Convert
from order_processor.domain.events import Event, EventType
from order_processor.domain.money import CENT
from order_processor.exceptions import TransactionNotFoundException
from order_processor.messaging.peek import peeking
from order_processor.messaging.producer import CommandFactory


def register(verbs: Any) -> None:
    convert = verbs.add_parser(
        "convert", help="sell an amount of one currency for another at the rate less the spread"
    )
    convert.add_argument("username")
    convert.add_argument("amount", help="of the currency sold, to its minor unit")
    convert.add_argument("sell", metavar="FROM")
    convert.add_argument("buy", metavar="TO")
    convert.add_argument(
        "--wait", action="store_true", help="wait for the conversion or its rejection"
    )
    convert.add_argument("--timeout", type=float, default=30.0)
    convert.set_defaults(run=cmd_convert)


def cmd_convert(args: argparse.Namespace, settings: Settings) -> int:
    command = CommandFactory(get_token_manager(settings)).convert(
        args.username, args.amount, args.sell, args.buy
    )

    async def action(clients: AwsClients) -> int:
        await send(settings, clients, command)
        print(command.command_id, flush=True)
        if not args.wait:
            return 0
        outcome = await conversion_outcome(settings, clients, command, args.timeout)
        if isinstance(outcome, BalanceTransaction):
            print_json(conversion_terms(outcome))
            return 0
        if outcome is None:
            print(
                f"order-processor: conversion {command.command_id} not answered within "
                f"{args.timeout:g} s: is the order worker running? (another reader of the "
                "order-status queue may have taken its answer: `order-processor events tail`)",
                file=sys.stderr,
            )
        else:
            print(
                f"order-processor: {outcome.data['reason']}: {outcome.data['message']}",
                file=sys.stderr,
            )
        return ExitStatus.FAILED

    return with_clients(settings, action)


async def conversion_outcome(
    settings: Settings, clients: AwsClients, command: Convert, seconds: float
) -> BalanceTransaction | Event | None:
    """The conversion's record of the currency sold (it is done), its `command.rejected`
    event, or None after `seconds`. The record is the answer that counts (the event
    may have been read by another follower); a rejection leaves nothing but its event."""
    balances = get_balance_dao(clients)
    sold = record_id(command.command_id, "sold")
    status_url = await clients.queue_url(settings.resources().order_status_queue.name)

    def ours(event: Event) -> bool:
        return event.username == command.username and (
            (
                event.event_type is EventType.COMMAND_REJECTED
                and event.data.get("command_id") == command.command_id
            )
            or (
                event.event_type is EventType.BALANCE_CONVERTED
                and event.data.get("conversion_id") == command.command_id
            )
        )

    deadline = time.monotonic() + seconds
    async with peeking(clients.sqs, status_url) as peek:
        while True:
            try:
                return await balances.get_transaction(command.username, sold)
            except TransactionNotFoundException:
                pass
            event = await peek.find(ours)
            if event is not None and event.event_type is EventType.COMMAND_REJECTED:
                return event
            if event is None and time.monotonic() > deadline:
                return None


def conversion_terms(sold: BalanceTransaction) -> dict[str, Any]:
    """What `balance.converted` says, from the conversion's stored record."""
    assert sold.counter_amount is not None
    assert sold.rate is not None
    assert sold.spread_percent is not None
    return {
        "conversion_id": sold.reference_id,
        "sell": sold.currency,
        "sold": format(sold.amount, "f"),
        "buy": sold.counter_currency,
        "bought": format(sold.counter_amount, "f"),
        "rate": format(sold.rate, "f"),
        "spread_percent": percent(sold.spread_percent),
    }


def percent(value: Decimal) -> str:
    """At least two places, as configured ("0.50"), not as DynamoDB gives it back ("0.5")."""
    exponent = value.as_tuple().exponent
    return format(
        value.quantize(CENT) if isinstance(exponent, int) and exponent > -2 else value, "f"
    )
