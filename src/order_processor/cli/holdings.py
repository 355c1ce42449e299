"""What a user holds: `balance` (every currency) and `portfolio` (holdings at current
prices), each with `--in CUR`: a total of everything in one currency at mid rates."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any

from order_processor.bootstrap import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_dao,
    get_balance_dao,
    get_rate_store,
)
from order_processor.cli.common import print_json, with_clients
from order_processor.cli.failures import ExitStatus
from order_processor.config import Settings
from order_processor.domain.base import utc_now
from order_processor.domain.currencies import currency_code
from order_processor.domain.fx import RateUnavailable
from order_processor.domain.money import order_value
from order_processor.domain.valuation import valued_in
from order_processor.store.portfolio import load_portfolio


def register(verbs: Any) -> None:
    for name, run, what in (
        ("balance", cmd_balance, "a user's balance in every currency held"),
        ("portfolio", cmd_portfolio, "a user's holdings at current prices"),
    ):
        verb = verbs.add_parser(name, help=what)
        verb.add_argument("username")
        verb.add_argument(
            "--in",
            dest="valued_in",
            type=currency_argument,
            metavar="CURRENCY",
            help="also a total of everything in this currency, at the current mid rates",
        )
        verb.set_defaults(run=run)


def cmd_balance(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        balances = await get_balance_dao(clients).balances(args.username)
        document: dict[str, Any] = {
            "username": balances[0].username,
            "balances": [b.model_dump(mode="json", exclude={"username"}) for b in balances],
        }
        if args.valued_in:
            amounts = [(b.currency, b.total) for b in balances]
            valuation = await value(settings, clients, amounts, args.valued_in)
            if valuation is None:
                return ExitStatus.FAILED
            document["valued_in"] = valuation
        print_json(document)
        return 0

    return with_clients(settings, action)


def cmd_portfolio(args: argparse.Namespace, settings: Settings) -> int:
    async def action(clients: AwsClients) -> int:
        balances = get_balance_dao(clients)
        portfolio = await load_portfolio(
            args.username, balances, get_asset_balance_dao(clients), get_asset_dao(clients)
        )
        if not args.valued_in:
            print_json(portfolio)
            return 0
        amounts = [(b.currency, b.total) for b in await balances.balances(args.username)]
        amounts += [
            (h.quote_currency, order_value(h.quantity, h.price)) for h in portfolio.holdings
        ]
        valuation = await value(settings, clients, amounts, args.valued_in)
        if valuation is None:
            return ExitStatus.FAILED
        print_json(portfolio.model_dump(mode="json", by_alias=True) | {"valued_in": valuation})
        return 0

    return with_clients(settings, action)


def currency_argument(text: str) -> str:
    try:
        return currency_code(text, "--in")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


async def value(
    settings: Settings, clients: AwsClients, amounts: list[tuple[str, Decimal]], currency: str
) -> dict[str, Any] | None:
    """The amounts' total in `currency` (domain.valuation), or None after saying on
    standard error which rate is missing or stale."""
    rates = await get_rate_store(clients, settings).rates()
    try:
        total = valued_in(amounts, currency, rates, now=utc_now(), max_age=settings.fx_max_age)
    except RateUnavailable as exc:
        print(f"order-processor: {exc.reason}: {exc.message}", file=sys.stderr)
        return None
    as_of = total.rates_as_of
    return {
        "currency": total.currency,
        "total": format(total.total, "f"),
        "at_rates_as_of": as_of.isoformat(timespec="seconds") if as_of else None,
    }
