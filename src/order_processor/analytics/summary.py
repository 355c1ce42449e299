"""The views as the CLI (`order-processor analytics --output json`) and the dashboard show
them: plain JSON, decimals as strings, latency as percentiles of the histogram (the bound,
in milliseconds, under which that share of the orders finished)."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal, localcontext
from typing import Any

from order_processor.analytics.views import (
    EXACT,
    LATENCY_BOUNDS_MS,
    LONGER,
    Report,
    percentile,
)

PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def summary(report: Report) -> dict[str, Any]:
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
                "quantity": _number(p.quantity),
                "cost": _number(p.cost),
                "realised_pnl": _number(p.realised),
                "bought_usd": _number(p.bought),
                "sold_usd": _number(p.sold),
                "fills": p.fills,
            }
            for (user, asset), p in sorted(report.positions.items())
        ],
        "users": _users(report),
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
    for (asset, kind, bucket), v in sorted(report.volume.items()):
        volume[asset][kind].append(
            {
                "bucket": bucket,
                "orders": v.orders,
                "quantity": _number(v.quantity),
                "usd": _number(v.usd),
            }
        )
    return dict(volume)


def _users(report: Report) -> list[dict[str, Any]]:
    """Users by traded volume (bought and sold, USD), with their realised P&L."""
    volume: dict[str, Decimal] = defaultdict(Decimal)
    pnl: dict[str, Decimal] = defaultdict(Decimal)
    with localcontext(EXACT):
        for (user, _), p in report.positions.items():
            volume[user] += p.bought + p.sold
            pnl[user] += p.realised
    ranked = sorted(volume, key=lambda u: (-volume[u], u))
    return [
        {"username": u, "volume_usd": _number(volume[u]), "realised_pnl": _number(pnl[u])}
        for u in ranked
    ]


def _number(value: Decimal) -> str:
    """Plain digits, no trailing zeros: the same text for 1500, 1500.00 (as a sum) and
    what DynamoDB hands back (it keeps no trailing zeros)."""
    with localcontext(EXACT):  # normalize() rounds to the context's precision
        return format(value.normalize(), "f")
