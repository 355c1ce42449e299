"""What an operator asks at 3 a.m., beyond queue depths: orders by status, the open limit
order book by asset, what sits in the dead-letter queue."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from order_processor.ops.dead_letters import DeadLetters
from order_processor.store.assets import AssetDAO
from order_processor.store.dynamo import all_items
from order_processor.store.orders import OrderDAO


@dataclass(frozen=True)
class Insight:
    orders_by_status: Counter[str]
    open_orders_by_asset: dict[str, tuple[int, int]]  # asset -> (bids, asks)
    dead_letters_by_type: Counter[str]
    waiting_stops_by_asset: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        lines = ["orders by status: " + _counts(self.orders_by_status)]
        book = ", ".join(
            f"{a} {b} bids/{s} asks" for a, (b, s) in sorted(self.open_orders_by_asset.items())
        )
        lines.append("open limit orders: " + (book or "none"))
        stops = ", ".join(f"{a} {n}" for a, n in sorted(self.waiting_stops_by_asset.items()))
        lines.append("waiting stop orders: " + (stops or "none"))
        lines.append("dead letters by type: " + _counts(self.dead_letters_by_type))
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """For `status --output json`."""
        return {
            "orders_by_status": dict(sorted(self.orders_by_status.items())),
            "open_limit_orders": {
                asset: {"bids": bids, "asks": asks}
                for asset, (bids, asks) in sorted(self.open_orders_by_asset.items())
            },
            "waiting_stop_orders": dict(sorted(self.waiting_stops_by_asset.items())),
            "dead_letters_by_type": dict(sorted(self.dead_letters_by_type.items())),
        }


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


async def orders_by_status(client: Any, table: str) -> Counter[str]:
    """A paginated scan of one attribute: memory is one counter, not the table."""
    counts: Counter[str] = Counter()
    arguments: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "#status",
        "ExpressionAttributeNames": {"#status": "status"},
    }
    async for item in all_items(client, "scan", arguments):
        if "status" in item:
            counts[str(item["status"])] += 1
    return counts


async def open_orders_by_asset(
    assets: AssetDAO, orders: OrderDAO
) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Per asset: (bids, asks) of the limit book, and the conditional orders waiting."""
    book: dict[str, tuple[int, int]] = {}
    stops: dict[str, int] = {}
    async for asset in assets.every_asset():
        bids, asks = await orders.order_book(asset.asset_id)
        if bids or asks:
            book[asset.asset_id] = (len(bids), len(asks))
        if waiting := await orders.waiting_stops(asset.asset_id):
            stops[asset.asset_id] = len(waiting)
    return book, stops


async def gather_insight(
    client: Any, orders_table: str, assets: AssetDAO, orders: OrderDAO, dead: DeadLetters
) -> Insight:
    book, stops = await open_orders_by_asset(assets, orders)
    return Insight(await orders_by_status(client, orders_table), book, await dead.summary(), stops)
