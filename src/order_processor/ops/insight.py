"""What an operator asks at 3 a.m., beyond queue depths: orders by status, the open limit
order book by asset, what sits in the dead-letter queue. `status --output json`, `orders
book` and the dashboard print these documents, so they show the same numbers."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from order_processor.domain.assets import normalise_asset_id
from order_processor.domain.orders import Order
from order_processor.ops.dead_letters import DeadLetters
from order_processor.ops.status import DeploymentStatus
from order_processor.store.assets import AssetDAO
from order_processor.store.dynamo import all_items
from order_processor.store.orders import OrderDAO


@dataclass(frozen=True)
class Insight:
    orders_by_status: Counter[str]
    open_orders_by_asset: dict[str, tuple[int, int]]  # asset -> (bids, asks)
    # None: not read. Reading them receives the dead letters (and hands them back), which
    # bumps their receive counts: the CLI does, the read-only dashboard does not.
    dead_letters_by_type: Counter[str] | None
    waiting_stops_by_asset: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        lines = ["orders by status: " + _counts(self.orders_by_status)]
        book = ", ".join(
            f"{a} {b} bids/{s} asks" for a, (b, s) in sorted(self.open_orders_by_asset.items())
        )
        lines.append("open limit orders: " + (book or "none"))
        stops = ", ".join(f"{a} {n}" for a, n in sorted(self.waiting_stops_by_asset.items()))
        lines.append("waiting stop orders: " + (stops or "none"))
        if self.dead_letters_by_type is not None:
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
            "dead_letters_by_type": None
            if self.dead_letters_by_type is None
            else dict(sorted(self.dead_letters_by_type.items())),
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


async def every_book(assets: AssetDAO, orders: OrderDAO) -> dict[str, dict[str, Any]]:
    """Each asset's `orders book` document."""
    return {a.asset_id: await order_book(orders, a.asset_id) async for a in assets.every_asset()}


def open_orders_by_asset(
    books: dict[str, dict[str, Any]],
) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Per asset: (bids, asks) of the limit book, and the conditional orders waiting."""
    book = {a: (len(b["bids"]), len(b["asks"])) for a, b in books.items() if b["bids"] or b["asks"]}
    stops = {a: len(b["stops"]) for a, b in books.items() if b["stops"]}
    return book, stops


async def gather_insight(
    client: Any,
    orders_table: str,
    books: dict[str, dict[str, Any]],
    dead: DeadLetters | None,
) -> Insight:
    """From the books already read (`every_book`); `dead`: None leaves the dead letters
    unread (see `Insight.dead_letters_by_type`)."""
    book, stops = open_orders_by_asset(books)
    by_type = None if dead is None else await dead.summary()
    return Insight(await orders_by_status(client, orders_table), book, by_type, stops)


def status_document(status: DeploymentStatus, insight: Insight | None) -> dict[str, Any]:
    """`status --output json`: the depths and counts, and the insight unless resources are
    missing (then there is nothing to read it from)."""
    if insight is None:
        return status.as_dict() | {
            "orders_by_status": None,
            "open_limit_orders": None,
            "dead_letters_by_type": None,
        }
    return status.as_dict() | insight.as_dict()


async def order_book(orders: OrderDAO, asset_id: str) -> dict[str, Any]:
    """`orders book ASSET`: the limit book, best price first, and the waiting
    conditional orders (see `OrderDAO.waiting_stops` for their order)."""
    bids, asks = await orders.order_book(asset_id)
    stops = await orders.waiting_stops(asset_id)
    return {
        "asset_id": normalise_asset_id(asset_id),
        "bids": [_resting(o) for o in bids],
        "asks": [_resting(o) for o in asks],
        "stops": [_waiting(o) for o in stops],
    }


def _resting(order: Order) -> dict[str, str]:
    return {
        "order_id": order.order_id,
        "username": order.username,
        "limit_price": format(order.limit_price or 0, "f"),
        "quantity": format(order.quantity, "f"),
    }


def _waiting(order: Order) -> dict[str, str]:
    return {
        "order_id": order.order_id,
        "username": order.username,
        "order_type": order.order_type.value,
        "stop_price": format(order.stop_price or 0, "f"),
        "quantity": format(order.quantity, "f"),
        **({"best_price": format(order.best_price, "f")} if order.best_price else {}),
    }
