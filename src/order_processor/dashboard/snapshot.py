"""`GET /api/snapshot`: everything the page shows, read at one moment, as one JSON
document. The page renders this document only, so what it shows can be checked against it
and it against the CLI: the analytics summary is `analytics --output json`'s, the status
`status --output json`'s (less the dead letters by type: see `Insight`), each book `orders
book`'s (its best `depth` rows), the rates `rates --output json`'s: one Query of their
partition, read once for the page's table and for the analytics' values in USD."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from order_processor.analytics.parts import BUCKETS
from order_processor.analytics.store import AnalyticsStore
from order_processor.analytics.summary import summary
from order_processor.analytics.valuation import Rates
from order_processor.bootstrap import AwsClients, get_asset_dao, get_order_dao, get_rate_store
from order_processor.config import Settings
from order_processor.dashboard.audit import AuditSchedule
from order_processor.domain.assets import Asset
from order_processor.domain.base import utc_now
from order_processor.ops.insight import gather_insight, order_book, status_document
from order_processor.ops.rates import StoredRates
from order_processor.ops.status import read_status

PRICE_PLACES = Decimal("0.00000001")  # prices carry 8 decimal places (domain.money)
RATE_MINUTES = 15


@dataclass(frozen=True)
class Sources:
    """What a snapshot reads: the aioboto3 clients, the boto3 clients `read_status` takes
    (DynamoDB, SQS, SNS), and the background audit; `settings` for the rates (the enabled
    currencies, and the age beyond which a rate is stale and values nothing)."""

    clients: AwsClients
    status_clients: tuple[Any, Any, Any]
    audit: AuditSchedule
    settings: Settings
    book_depth: int = 10


async def read_snapshot(sources: Sources) -> dict[str, Any]:
    clients, settings = sources.clients, sources.settings
    store = AnalyticsStore(clients.dynamodb, clients.resources.analytics_table)
    stored = await get_rate_store(clients, settings).rates()
    as_of = utc_now()
    analytics = summary(await store.report(), Rates(stored, as_of, settings.fx_max_age))
    assets = {a.asset_id: a async for a in get_asset_dao(clients).every_asset()}
    orders = get_order_dao(clients)
    every = {asset: await order_book(orders, asset) for asset in sorted(assets)}
    status = await read_status_document(sources, every)
    books = {asset: top_of_book(book, sources.book_depth) for asset, book in every.items()}
    return {
        "as_of": as_of.isoformat(),
        "analytics": analytics,
        "status": status,
        "books": books,
        "prices": price_history(analytics["volume"], assets),
        "rates": StoredRates.of(stored, settings, as_of).document(),
        "throughput": throughput(analytics["rate"], as_of),
        "audit": sources.audit.last(),
    }


async def read_status_document(
    sources: Sources, books: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """`status --output json` but for the dead letters by type, which are not read; its
    open orders counted from the books the snapshot read."""
    clients = sources.clients
    status = await asyncio.to_thread(read_status, clients.resources, *sources.status_clients)
    if status.missing:
        return status_document(status, None)
    insight = await gather_insight(clients.dynamodb, clients.resources.orders_table, books, None)
    return status_document(status, insight)


def top_of_book(book: dict[str, Any], depth: int) -> dict[str, Any]:
    """The best `depth` rows of each side and of the waiting stops, and how many there
    are in all (a book can hold thousands; the page shows its top)."""
    sides = ("bids", "asks", "stops")
    return {
        "asset_id": book["asset_id"],
        **{side: book[side][:depth] for side in sides},
        "totals": {side: len(book[side]) for side in sides},
    }


def price_history(volume: dict[str, Any], assets: dict[str, Asset]) -> dict[str, Any]:
    """Per asset, in its quote currency: the volume-weighted average price of each minute's
    fills (the amount over the quantity of the orders completed in that UTC minute) and
    the inventory's price now. A fill's amount is rounded to the currency's minor unit for
    the house, so a VWAP is that close. An asset gone from the inventory is shown in the
    currency of its last fills."""
    prices: dict[str, Any] = {}
    for asset in sorted(set(volume) | set(assets)):
        minutes = volume.get(asset, {}).get("minute", [])
        listed = assets.get(asset)
        if listed is not None:
            currency: str | None = listed.quote_currency
        else:
            currency = minutes[-1]["currency"] if minutes else None
        prices[asset] = {
            "currency": currency,
            "current": None if listed is None else format(listed.price, "f"),
            "history": [
                {"minute": m["bucket"], "vwap": _vwap(Decimal(m["amount"]), Decimal(m["quantity"]))}
                for m in minutes
                if Decimal(m["quantity"]) and m["currency"] == currency
            ],
        }
    return prices


def _vwap(amount: Decimal, quantity: Decimal) -> str:
    return format((amount / quantity).quantize(PRICE_PLACES), "f")


def throughput(
    rate: list[dict[str, Any]], as_of: datetime, minutes: int = RATE_MINUTES
) -> dict[str, Any]:
    """Final orders per second in each of the last `minutes` UTC minutes up to `as_of`'s,
    by order type and by final status. A minute without orders is a zero (the chart's time
    axis has no gaps); the current minute is divided by the seconds it has lasted, not 60,
    so that its rate is not understated while it fills."""
    last = as_of.replace(second=0, microsecond=0)
    labels = [(last - timedelta(minutes=n)).strftime(BUCKETS["minute"]) for n in range(minutes)]
    labels.reverse()
    index = {label: i for i, label in enumerate(labels)}
    by_type: dict[str, list[int]] = defaultdict(lambda: [0] * minutes)
    by_status: dict[str, list[int]] = defaultdict(lambda: [0] * minutes)
    for row in rate:
        if (i := index.get(row["minute"])) is not None:
            by_type[row["order_type"]][i] += row["orders"]
            by_status[row["status"]][i] += row["orders"]
    elapsed = max(1.0, (as_of - last).total_seconds())
    seconds = [60.0] * (minutes - 1) + [elapsed]

    def per_second(counts: dict[str, list[int]]) -> dict[str, list[float]]:
        return {
            key: [round(n / s, 3) for n, s in zip(values, seconds, strict=True)]
            for key, values in sorted(counts.items())
        }

    return {"minutes": labels, "by_type": per_second(by_type), "by_status": per_second(by_status)}
