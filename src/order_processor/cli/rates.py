"""Exchange-rate verbs: `rate` (one UpdateRate, as `price`), `rates` (what is stored, how
old) and `fx`, the rates feed: a random walk or the ECB's daily reference rates."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from order_processor.bootstrap import (
    AwsClients,
    get_rate_store,
    get_token_manager,
)
from order_processor.cli.admin import PRICE_WAIT_SECONDS, parse_interval, price_producer_for
from order_processor.cli.admin import wait_seconds as parse_wait_seconds
from order_processor.cli.common import (
    Observation,
    add_output_argument,
    print_json,
    wait_until_applied,
    with_clients,
)
from order_processor.cli.failures import ExitStatus
from order_processor.config import Settings
from order_processor.demo.ecb import EcbError, read_document, reference_rates
from order_processor.demo.feeds import TYPICAL_RATES, random_walk
from order_processor.domain.currencies import BASE_CURRENCY, currency_code
from order_processor.domain.money import RATE_PLACES
from order_processor.messaging.producer import CommandFactory
from order_processor.ops.rates import StoredRates

ECB = "ecb:"
ECB_INTERVAL = 3600.0  # the ECB publishes once a business day: hourly reads are plenty
WALK_STEP = Decimal("0.001")  # a rate moves at most 0.1 % a tick


def register(verbs: Any) -> None:
    rate = verbs.add_parser(
        "rate", help="send a currency's rate (USD per unit) to the limit matcher and wait"
    )
    rate.add_argument("currency")
    rate.add_argument("rate")
    rate.add_argument(
        "--wait-seconds",
        type=parse_wait_seconds,
        default=PRICE_WAIT_SECONDS,
        help=f"how long to wait for the matcher (default {PRICE_WAIT_SECONDS:g}; 0: send only)",
    )
    rate.set_defaults(run=cmd_rate)
    rates = verbs.add_parser("rates", help="the stored exchange rates, their time and age")
    add_output_argument(rates)
    rates.set_defaults(run=cmd_rates)
    feed = verbs.add_parser(
        "fx", help="send exchange rates: a random walk, or the ECB's reference rates"
    )
    feed.add_argument(
        "--currencies", help="comma-separated (default: the configured currencies but USD)"
    )
    feed.add_argument(
        "--interval",
        type=parse_interval,
        help=f"1s, 500ms, 2m (default 1s; {ECB_INTERVAL:g} s with --source ecb:...)",
    )
    feed.add_argument("--ticks", type=int, help="stop after this many rounds")
    feed.add_argument("--seed", type=int, help="random walk: reproducible rates")
    feed.add_argument(
        "--source",
        type=rates_source,
        help="ecb:PATH or ecb:URL: the ECB's eurofxref-daily.xml instead of the random walk",
    )
    feed.set_defaults(run=cmd_fx)


def cmd_rate(args: argparse.Namespace, settings: Settings) -> int:
    """A rate goes the way a price goes (`price`): an UpdateRate to the limit matcher,
    which stores it if it is newer than the stored one; the CLI waits until it has."""
    update = CommandFactory(get_token_manager(settings)).update_rate(args.currency, args.rate)
    currency = update.payload.currency

    async def action(clients: AwsClients) -> int:
        await (await price_producer_for(settings, clients)).send(update)
        if args.wait_seconds <= 0:
            print(update.command_id)
            return 0
        store = get_rate_store(clients, settings)

        async def stored() -> Observation:
            found = (await store.rates()).get(currency)
            if found is None:
                return Observation(None, None, None)
            return Observation(found, found.command_id, found.as_of)

        return await wait_until_applied(update, stored, args.wait_seconds, f"{currency} rate")

    return with_clients(settings, action)


def cmd_rates(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        shown = StoredRates.of(await get_rate_store(clients, settings).rates(), settings)
        if args.output == "json":
            print_json(shown.document())
            return 0
        for row in shown.rows:
            print(row.line(settings.fx_max_age_seconds))
        for currency in shown.missing:
            print(f"{currency}  no rate")
        return 0

    return with_clients(settings, action)


# fx


def rates_source(text: str) -> str:
    if not text.startswith(ECB) or len(text) == len(ECB):
        raise argparse.ArgumentTypeError(f"{text!r}: use ecb:PATH or ecb:URL")
    return text.removeprefix(ECB)


@dataclass(frozen=True)
class RatesRound:
    """One round of the feed: the rates to send (none: nothing new), dated `as_of` by
    their source (None: now); `failed` when the source could not be read."""

    rates: dict[str, Decimal] = field(default_factory=dict)
    as_of: datetime | None = None
    failed: bool = False


def cmd_fx(args: argparse.Namespace, settings: Settings) -> int:
    currencies = fed_currencies(args.currencies, settings)
    factory = CommandFactory(get_token_manager(settings))
    interval = args.interval if args.interval is not None else 1.0
    if args.interval is None and args.source:
        interval = ECB_INTERVAL

    async def action(clients: AwsClients) -> int:
        producer = await price_producer_for(settings, clients)
        count, failed = 0, False
        rounds = ecb_rounds(args.source, currencies) if args.source else None
        if rounds is None:
            rounds = walk_rounds(await starting_rates(settings, clients, currencies), args.seed)
        async for feed in rounds:
            failed = feed.failed
            if feed.rates:
                updates = [
                    factory.update_rate(c, r, observed_at=feed.as_of) for c, r in feed.rates.items()
                ]
                await producer.send_batch(updates)
                print(json.dumps({c: format(r, "f") for c, r in feed.rates.items()}), flush=True)
            count += 1
            if args.ticks is not None and count >= args.ticks:
                break
            await asyncio.sleep(interval)
        return ExitStatus.FAILED if failed else 0

    return with_clients(settings, action)


def fed_currencies(text: str | None, settings: Settings) -> list[str]:
    if text is None:
        return [c for c in settings.currencies if c != BASE_CURRENCY]
    try:
        codes = [currency_code(c, "--currencies") for c in text.split(",") if c.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    for code in codes:
        if code == BASE_CURRENCY or code not in settings.currencies:
            raise argparse.ArgumentTypeError(
                f"--currencies: {code} is the base currency or not enabled "
                f"(ORDER_PROCESSOR_CURRENCIES={','.join(settings.currencies)})"
            )
    return codes


async def starting_rates(
    settings: Settings, clients: AwsClients, currencies: list[str]
) -> dict[str, Decimal]:
    """Where the walk starts: the stored rates, else typical ones (a demo's guess)."""
    stored = await get_rate_store(clients, settings).rates()
    start: dict[str, Decimal] = {}
    for code in currencies:
        known = stored[code].rate if code in stored else TYPICAL_RATES.get(code)
        if known is None:
            raise argparse.ArgumentTypeError(
                f"no {code} rate to start the walk from: send one (order-processor rate {code} R)"
            )
        start[code] = known
    return start


async def walk_rounds(start: dict[str, Decimal], seed: int | None) -> AsyncIterator[RatesRound]:
    for rates in random_walk(start, step_fraction=WALK_STEP, seed=seed, places=RATE_PLACES):
        yield RatesRound(rates)


async def ecb_rounds(source: str, currencies: list[str]) -> AsyncIterator[RatesRound]:
    """The ECB's file, read every round; sent when its reference date is newer than the
    last one sent (the matcher would ignore the same day's rates again anyway)."""
    sent: datetime | None = None
    while True:
        try:
            found = reference_rates(await asyncio.to_thread(read_document, source))
        except (EcbError, OSError) as exc:
            print(f"order-processor: ECB rates from {source}: {exc}", file=sys.stderr)
            yield RatesRound(failed=True)
            continue
        if sent is not None and found.as_of <= sent:
            yield RatesRound()
            continue
        sent = found.as_of
        for code in currencies:
            if code not in found.rates:
                why = found.skipped.get(code, "not in the file")
                print(f"order-processor: ECB rates: no {code} rate ({why})", file=sys.stderr)
        rates = {c: found.rates[c] for c in currencies if c in found.rates}
        yield RatesRound(rates, found.as_of)
