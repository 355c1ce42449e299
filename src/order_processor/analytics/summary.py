"""The views as the CLI (`order-processor analytics --output json`) and the dashboard show
them: plain JSON, decimals as strings, latency as percentiles of the histogram (the bound,
in milliseconds, under which that share of the orders finished), amounts in their
currency with their totals in the base currency (`analytics.valuation`)."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal, localcontext
from typing import Any

from order_processor.analytics.amounts import EXACT
from order_processor.analytics.latency import LATENCY_BOUNDS_MS, LONGER, percentile
from order_processor.analytics.valuation import (
    FIGURES,
    Rates,
    Totals,
    per_currency,
    user_figures,
    valued,
)
from order_processor.analytics.views import Report
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.fx import RateUnavailable

PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def summary(report: Report, rates: Rates | None = None) -> dict[str, Any]:
    """`rates`: what other currencies are valued at (None: none, only the base currency's
    figures are in the totals)."""
    rates = rates or Rates()
    statuses = report.statuses
    return {
        "orders": {
            "final": sum(statuses.values()),
            "by_status": dict(sorted(statuses.items())),
            "failures": dict(sorted(report.failures.items())),
            "fill_ratio": str(report.fill_ratio.quantize(Decimal("0.0001"))),
        },
        "latency_ms": {kind: _latency(report.latency[kind]) for kind in ("market", "resting")},
        "rate": [
            {"minute": minute, "order_type": kind, "status": status, "orders": count}
            for (minute, kind, status), count in sorted(report.rate.items())
        ],
        "volume": _volume(report),
        "positions": [
            {
                "username": user,
                "asset_id": asset,
                "currency": p.currency,
                "quantity": _number(p.quantity),
                "cost": _number(p.cost),
                "realised_pnl": _number(p.realised),
                "bought": _number(p.bought),
                "sold": _number(p.sold),
                "fills": p.fills,
            }
            for (user, asset), p in sorted(report.positions.items())
        ],
        "users": _users(report, rates),
        "currencies": _currencies(report, rates),
        "conversions": _conversions(report, rates),
    }


def _latency(histogram: Counter[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"samples": sum(histogram.values())}
    result |= {name: percentile(histogram, q) for name, q in PERCENTILES.items()}
    labels = [*(str(b) for b in LATENCY_BOUNDS_MS), LONGER]
    result["histogram"] = {label: histogram[label] for label in labels if histogram[label]}
    return result


def _volume(report: Report) -> dict[str, Any]:
    volume: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: {"day": [], "hour": [], "minute": []}
    )
    rows = sorted(report.volume.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][3], kv[0][1]))
    for (asset, currency, kind, bucket), v in rows:
        volume[asset][kind].append(
            {
                "bucket": bucket,
                "currency": currency,
                "orders": v.orders,
                "quantity": _number(v.quantity),
                "amount": _number(v.amount),
            }
        )
    return dict(volume)


def _users(report: Report, rates: Rates) -> list[dict[str, Any]]:
    """Users by traded volume (bought and sold) in the base currency, with their realised
    P&L; both per currency too."""
    ranked: list[tuple[Decimal, str, dict[str, Any]]] = []
    positions = ((user, p) for (user, _), p in report.positions.items())
    for user, currencies in user_figures(positions).items():
        totals = Totals(rates)
        for currency, figures in currencies.items():
            totals.value(currency, {k: figures.amounts[k] for k in ("volume", "realised_pnl")})
        volume = totals.amounts.get("volume", Decimal(0))
        shown = {
            "username": user,
            "volume_in_base": _number(volume),
            "realised_pnl_in_base": _number(totals.amounts.get("realised_pnl", Decimal(0))),
            "unconverted": sorted(totals.unconverted),
            **{
                name: {c: _number(f.amounts[name]) for c, f in sorted(currencies.items())}
                for name in ("volume", "realised_pnl")
            },
        }
        ranked.append((-volume, user, shown))
    return [shown for _, _, shown in sorted(ranked, key=lambda r: r[:2])]


def _currencies(report: Report, rates: Rates) -> dict[str, Any]:
    """Per quote currency, the positions' figures (and the spread kept on conversions
    into it), each valued in the base currency; and their totals."""
    totals = Totals(rates)
    rows = []
    for currency, figures in per_currency(report).items():
        rate = rates.of(currency)
        stored = rates.stored.get(currency)
        in_base = totals.value(currency, figures.amounts)
        rows.append(
            {
                "currency": currency,
                "fills": figures.fills,
                **{name: _number(amount) for name, amount in figures.amounts.items()},
                "rate": None if isinstance(rate, RateUnavailable) else _number(rate),
                "rate_as_of": None if stored is None else stored.as_of.isoformat(),
                "unconverted": rate.reason.value if isinstance(rate, RateUnavailable) else None,
                "in_base": None if in_base is None else _numbers(in_base),
            }
        )
    total = {name: totals.amounts.get(name, Decimal(0)) for name in FIGURES}
    return {
        "base": BASE_CURRENCY,
        "by_currency": rows,
        "total_in_base": {
            **_numbers(total),
            "rates_as_of": None if totals.oldest is None else totals.oldest.isoformat(),
            "unconverted": totals.unconverted,
        },
    }


def _conversions(report: Report, rates: Rates) -> list[dict[str, Any]]:
    """Per pair, the conversions, and the spread kept in the base currency."""
    shown = []
    for (sell, buy), exchanged in sorted(report.conversions.items()):
        rate = rates.of(buy)
        shown.append(
            {
                "sell": sell,
                "buy": buy,
                "conversions": exchanged.conversions,
                "sold": _number(exchanged.sold),
                "bought": _number(exchanged.bought),
                "spread": _number(exchanged.spread),
                "spread_in_base": None
                if isinstance(rate, RateUnavailable)
                else _number(valued(exchanged.spread, rate)),
            }
        )
    return shown


def _numbers(amounts: dict[str, Decimal]) -> dict[str, str]:
    return {name: _number(amount) for name, amount in amounts.items()}


def _number(value: Decimal) -> str:
    """Plain digits, no trailing zeros: the same text for 1500, 1500.00 (as a sum) and
    what DynamoDB hands back (it keeps no trailing zeros)."""
    with localcontext(EXACT):  # normalize() rounds to the context's precision
        return format(value.normalize(), "f")
