"""The analytics views as DynamoDB items: what `analytics.store` writes, and reads back.

- `ORDER#<order id>` / `FINAL` and `CONVERTED#<user>#<conversion id>` / `CONVERTED`: the
  markers, one per order's final event and one per conversion counted;
- `TOTALS#<s>` / `ALL`: counts by status (`s_<status>`), failure (`f_<reason>`), latency
  (`l_<kind>_<bound>`), the assets traded (`assets`), and per pair of currencies the
  conversions (`x_<SELL>_<BUY>_n`, `_sold`, `_bought`, `_spread`);
- `RATE#<s>` / `<minute>`: `<order type>|<status>` counts;
- `VOLUME#<asset>#<s>` / `<kind>#<bucket>#<currency>`: orders, quantity, amount;
- `FILLS#<user>#<asset>` / `<time>#<order id>` and `POSITIONS#<s>` / `<user>#<asset>`.

Items written before currencies read as USD: a volume item whose sort key has no
currency and whose amount is `usd`, a fill whose amount is `usd`, a position without
`currency`. New fills in USD go to new items, and readers sum both.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from order_processor.analytics.amounts import EXACT
from order_processor.analytics.conversions import Conversion
from order_processor.analytics.parts import BUCKETS, Contribution, Converted, Fill, Part
from order_processor.analytics.views import Position, Report
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.store.dynamo import to_item

SHARDS = 8
FINAL_SK = "FINAL"
CONVERTED_SK = "CONVERTED"
TOTALS_SK = "ALL"
LEGACY_AMOUNT = "usd"  # the amount's name in the items written before currencies
_CONVERSION_FIGURES = ("n", "sold", "bought", "spread")


def shard(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def marker_item(part: Part) -> dict[str, Any]:
    """The part counted: what keeps any copy of its event out."""
    item: dict[str, Any] = {"PK": part.marker, "event_id": part.event_id, "at": part.at}
    if isinstance(part, Converted):
        item["SK"] = CONVERTED_SK
    else:
        item |= {"SK": FINAL_SK, "status": part.status}
    return to_item(item)


def total_amounts(part: Part) -> dict[str, Any]:
    """What a part adds to its shard's totals."""
    amounts = conversion_amounts(part.conversion) if part.conversion else {}
    if isinstance(part, Converted):
        return amounts
    amounts[f"s_{part.status}"] = 1
    if part.failure_reason:
        amounts[f"f_{part.failure_reason}"] = 1
    if part.latency:
        amounts[f"l_{part.latency[0]}_{part.latency[1]}"] = 1
    amounts["assets"] = {part.asset_id}
    return amounts


def conversion_amounts(conversion: Conversion) -> dict[str, Any]:
    figures = (1, conversion.sold, conversion.bought, conversion.spread)
    prefix = f"x_{conversion.sell}_{conversion.buy}"
    return {f"{prefix}_{name}": v for name, v in zip(_CONVERSION_FIGURES, figures, strict=True)}


def volume_sk(kind: str, bucket: str, currency: str) -> str:
    return f"{kind}#{bucket}#{currency}"


def volume_amounts(fill: Fill) -> dict[str, Any]:
    return {"orders": 1, "quantity": fill.quantity, "amount": fill.amount}


def read_volume(report: Report, asset_id: str, item: dict[str, Any]) -> None:
    """A volume item added to the report's (an item of before currencies is USD's)."""
    kind, bucket, *currency = str(item["SK"]).split("#")
    volume = report.volume[(asset_id, currency[0] if currency else BASE_CURRENCY, kind, bucket)]
    volume.orders += int(item["orders"])
    with localcontext(EXACT):  # the shards' sums, without rounding
        volume.quantity += item["quantity"]
        volume.amount += item.get("amount", item.get(LEGACY_AMOUNT, 0))


def read_totals(report: Report, item: dict[str, Any]) -> set[str]:
    """A totals item added to the report's; the assets it names."""
    for name, value in item.items():
        kind, _, rest = name.partition("_")
        if kind == "s" and rest:
            report.statuses[rest] += int(value)
        elif kind == "f" and rest:
            report.failures[rest] += int(value)
        elif kind == "l" and rest:
            latency_kind, bucket = rest.split("_", 1)
            report.latency[latency_kind][bucket] += int(value)
        elif kind == "x" and rest.count("_") == 2:
            sell, buy, figure = rest.split("_")
            _add_conversion_figure(report, (sell, buy), figure, value)
    return {str(a) for a in item.get("assets", set())}


def _add_conversion_figure(
    report: Report, pair: tuple[str, str], figure: str, value: Decimal
) -> None:
    exchanged = report.conversions[pair]
    with localcontext(EXACT):
        if figure == "n":
            exchanged.conversions += int(value)
        elif figure in ("sold", "bought", "spread"):
            setattr(exchanged, figure, getattr(exchanged, figure) + value)


def report_items(report: Report) -> list[dict[str, Any]]:
    """A report as stored items, all in shard 0."""
    totals: dict[str, Any] = {"PK": "TOTALS#0", "SK": TOTALS_SK}
    totals |= {f"s_{k}": v for k, v in report.statuses.items() if v}
    totals |= {f"f_{k}": v for k, v in report.failures.items() if v}
    for kind, histogram in report.latency.items():
        totals |= {f"l_{kind}_{bucket}": v for bucket, v in histogram.items() if v}
    for (sell, buy), exchanged in report.conversions.items():
        if exchanged.conversions:
            figures = exchanged.figures()
            totals |= {
                f"x_{sell}_{buy}_{name}": v
                for name, v in zip(_CONVERSION_FIGURES, figures, strict=True)
            }
    assets = {asset for asset, _, _, _ in report.volume} | {a for _, a in report.positions}
    if assets:
        totals["assets"] = assets
    rates: dict[str, dict[str, Any]] = {}
    for (minute, order_type, status), count in report.rate.items():
        rates.setdefault(minute, {"PK": "RATE#0", "SK": minute})[f"{order_type}|{status}"] = count
    items = [totals, *rates.values()]
    items += [
        {
            "PK": f"VOLUME#{asset}#0",
            "SK": volume_sk(kind, bucket, currency),
            "orders": v.orders,
            "quantity": v.quantity,
            "amount": v.amount,
        }
        for (asset, currency, kind, bucket), v in report.volume.items()
        if kind in BUCKETS
    ]
    items += [
        {"PK": f"POSITIONS#{shard(user)}", "SK": f"{user}#{asset}", **position_item(p)}
        for (user, asset), p in report.positions.items()
    ]
    return [to_item(item) for item in items]


def fill_item(part: Contribution, fill: Fill) -> dict[str, Any]:
    return to_item(
        {
            "PK": f"FILLS#{part.username}#{part.asset_id}",
            "SK": fill.key,
            "buy": fill.buy,
            "quantity": fill.quantity,
            "amount": fill.amount,
            "currency": fill.currency,
            "at": fill.at,
            "order_id": fill.order_id,
        }
    )


def position_item(position: Position) -> dict[str, Any]:
    return {
        "quantity": position.quantity,
        "cost": position.cost,
        "realised": position.realised,
        "bought": position.bought,
        "sold": position.sold,
        "fills": position.fills,
        "last": position.last,
        "currency": position.currency,
    }


def position(item: dict[str, Any]) -> Position:
    return Position(
        quantity=Decimal(item["quantity"]),
        cost=Decimal(item["cost"]),
        realised=Decimal(item["realised"]),
        bought=Decimal(item["bought"]),
        sold=Decimal(item["sold"]),
        fills=int(item["fills"]),
        last=str(item["last"]),
        currency=str(item.get("currency", BASE_CURRENCY)),
    )


def fill(item: dict[str, Any]) -> Fill:
    return Fill(
        datetime.fromisoformat(str(item["at"])),
        str(item["order_id"]),
        bool(item["buy"]),
        Decimal(item["quantity"]),
        Decimal(item.get("amount", item.get(LEGACY_AMOUNT, 0))),
        str(item.get("currency", BASE_CURRENCY)),
    )
