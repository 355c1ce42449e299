"""`order-processor analytics [USER] [--asset A]`: the analytics views, their figures per
currency valued at the stored rates; `--rebuild` and `--check` recompute them from the
orders table and the conversion records."""

from __future__ import annotations

import argparse
from typing import Any

from order_processor.analytics.parts import Part
from order_processor.analytics.rebuild import conversion_events, rebuild
from order_processor.analytics.store import AnalyticsStore
from order_processor.analytics.summary import summary
from order_processor.analytics.valuation import Rates
from order_processor.analytics.views import Report
from order_processor.bootstrap import AwsClients, get_order_dao, get_rate_store
from order_processor.cli.common import add_output_argument, print_json, with_clients
from order_processor.config import Settings
from order_processor.domain.assets import normalise_asset_id
from order_processor.domain.users import normalise_username


def register(verbs: Any) -> None:
    verb = verbs.add_parser(
        "analytics", help="volume, fill ratio, latency, P&L: the analytics worker's views"
    )
    verb.add_argument("username", nargs="?", help="only this user's positions")
    verb.add_argument("--asset", help="only this asset's volume and positions")
    how = verb.add_mutually_exclusive_group()
    how.add_argument(
        "--rebuild", action="store_true", help="recompute the views from the orders table"
    )
    how.add_argument(
        "--check",
        action="store_true",
        help="compare the stored views with the rebuilt ones (exit status 1 if they differ)",
    )
    verb.add_argument(
        "--write",
        action="store_true",
        help="with --rebuild: replace the stored views (stop the analytics worker first)",
    )
    add_output_argument(verb)
    verb.set_defaults(run=cmd_analytics)


def cmd_analytics(args: argparse.Namespace, settings: Settings) -> int:
    if args.write and not args.rebuild:
        raise argparse.ArgumentTypeError("--write goes with --rebuild")

    # As stored: usernames lower-case, asset ids upper-case (as `buy` takes an asset id).
    user = normalise_username(args.username) if args.username else None
    asset = normalise_asset_id(args.asset) if args.asset else None

    async def action(clients: AwsClients) -> int:
        store = AnalyticsStore(clients.dynamodb, clients.resources.analytics_table)
        if args.check:
            rebuilt, _ = await rebuilt_views(clients)
            differences = (await store.report()).differences(rebuilt)
            if args.output == "json":
                print_json({"equal": not differences, "differences": differences})
            else:
                print("\n".join(differences) or "the stored views equal the rebuilt ones")
            return 1 if differences else 0
        if args.rebuild:
            report, finals = await rebuilt_views(clients)
            if args.write:
                await store.replace(report, finals)
            report = narrowed(report, user, asset)
        else:
            report = await store.report(user=user, asset=asset)
        rates = await Rates.read(get_rate_store(clients, settings), settings.fx_max_age)
        shown = summary(report, rates)
        if args.output == "json":
            print_json(shown)
        else:
            print(render(shown))
        return 0

    return with_clients(settings, action)


async def rebuilt_views(clients: AwsClients) -> tuple[Report, dict[str, Part]]:
    """The views from the orders table and the users table's conversion records."""
    conversions = conversion_events(clients.dynamodb, clients.resources.users_table)
    return await rebuild(get_order_dao(clients), conversions)


def narrowed(report: Report, user: str | None, asset: str | None) -> Report:
    """What `store.report(user=..., asset=...)` reads, from a whole report."""
    report.positions = {
        (u, a): p
        for (u, a), p in report.positions.items()
        if (user is None or u == user) and (asset is None or a == asset)
    }
    if asset is not None:
        report.volume = {k: v for k, v in report.volume.items() if k[0] == asset}
    return report


def render(shown: dict[str, Any]) -> str:
    orders = shown["orders"]
    lines = [
        f"final orders: {orders['final']}  fill ratio: {orders['fill_ratio']}",
        "  by status: " + _pairs(orders["by_status"]),
        "  failures: " + _pairs(orders["failures"]),
    ]
    for kind, latency in shown["latency_ms"].items():
        figures = "  ".join(f"{p} <= {_ms(latency[p])}" for p in ("p50", "p90", "p99"))
        lines.append(f"latency ({kind}, {latency['samples']} orders): {figures or '-'}")
    lines.append("volume (UTC days):")
    for asset, kinds in shown["volume"].items():
        for day in kinds["day"]:
            lines.append(
                f"  {asset:<8} {day['bucket']}  {day['orders']:>6} orders  "
                f"{day['quantity']:>16}  {day['amount']:>16} {day['currency']}"
            )
    lines.append("positions (average cost):")
    for p in shown["positions"]:
        lines.append(
            f"  {p['username']:<16} {p['asset_id']:<8} holds {p['quantity']:>16} "
            f"cost {p['cost']:>16}  realised P&L {p['realised_pnl']:>16} {p['currency']}"
        )
    lines += _currency_lines(shown["currencies"])
    for c in shown["conversions"]:
        lines.append(
            f"conversions {c['sell']} to {c['buy']}: {c['conversions']}, sold {c['sold']}, "
            f"bought {c['bought']}, spread kept {c['spread']} {c['buy']}"
        )
    return "\n".join(lines)


def _currency_lines(currencies: dict[str, Any]) -> list[str]:
    base = currencies["base"]
    lines = ["per currency (volume, realised P&L; in the base currency at the stored rate):"]
    for row in currencies["by_currency"]:
        valued = row["in_base"]
        at = (
            f"{valued['volume']} / {valued['realised_pnl']} {base} at {row['rate']}"
            if valued
            else f"not converted: {row['unconverted']}"
        )
        lines.append(
            f"  {row['currency']}  {row['volume']:>16} / {row['realised_pnl']:>16}  ({at})"
        )
    total = currencies["total_in_base"]
    missing = ", ".join(f"{c} ({why})" for c, why in total["unconverted"].items())
    lines.append(
        f"total in {base}: volume {total['volume']}, realised P&L {total['realised_pnl']}, "
        f"conversion spread {total['conversion_spread']}"
        + (f", at rates as of {total['rates_as_of']}" if total["rates_as_of"] else "")
        + (f"; not converted: {missing}" if missing else "")
    )
    return lines


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _ms(bound: int | None) -> str:
    if bound is None:
        return "-"
    return "more than an hour" if bound < 0 else f"{bound} ms"
