"""Trading analytics kept from the order events, applied once each whatever the delivery.

Only an order's final event counts (completed, failed, cancelled, expired): an order has
exactly one, so at-least-once delivery, copies and reordering cannot count it twice. An
event is applied once by its `event_id`, and a final event is applied once per order
(a copy under another id, or a later state's event after it, changes nothing).

- volume and orders per asset per minute, hour and day (UTC buckets of the final event);
- orders by final status and failure reason; the fill ratio (completed of all final);
- per user and asset, by the average-cost method: a buy adds its quantity and its cost
  (what was paid) to the position; a sell realises proceeds minus the average cost of the
  quantity sold, and takes that cost out of the position. The position (exposure) is the
  quantity held through the orders seen, and its cost. Fills are taken in the order they
  happened (the final event's time, then the order id), whatever order they arrive in,
  so a late event gives the same figures as a punctual one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext

from order_processor.domain.events import Event, EventType

FINAL = {
    EventType.ORDER_COMPLETED,
    EventType.ORDER_FAILED,
    EventType.ORDER_CANCELLED,
    EventType.ORDER_EXPIRED,
}
BUCKETS = {"minute": "%Y-%m-%dT%H:%M", "hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}


@dataclass
class Position:
    quantity: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # what the quantity held cost, exactly
    realised: Decimal = Decimal(0)

    def buy(self, quantity: Decimal, paid: Decimal) -> None:
        self.quantity += quantity
        self.cost += paid

    def sell(self, quantity: Decimal, proceeds: Decimal) -> None:
        """Average cost of what is sold; a sale beyond the position seen (assets given
        outside orders) realises against no cost for the excess."""
        with localcontext() as context:
            context.prec = 60
            covered = min(quantity, self.quantity)
            basis = self.cost * covered / self.quantity if self.quantity else Decimal(0)
            self.realised += proceeds - basis
            self.cost -= basis
            self.quantity -= covered


@dataclass(frozen=True, order=True)
class Fill:
    at: datetime
    order_id: str
    buy: bool
    quantity: Decimal
    usd: Decimal


@dataclass
class Volume:
    orders: int = 0
    quantity: Decimal = Decimal(0)
    usd: Decimal = Decimal(0)


@dataclass
class Views:
    applied: set[str] = field(default_factory=set)  # event ids
    finished: set[str] = field(default_factory=set)  # order ids with their final event
    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    volume: dict[tuple[str, str, str], Volume] = field(
        default_factory=lambda: defaultdict(Volume)
    )  # (asset, bucket kind, bucket) -> volume
    fills: dict[tuple[str, str], list[Fill]] = field(
        default_factory=lambda: defaultdict(list)
    )  # (user, asset) -> fills, as they arrived

    def apply(self, event: Event) -> bool:
        """Apply one event; False when it changes nothing (a copy, not final, or its
        order already finished)."""
        if event.event_id in self.applied:
            return False
        self.applied.add(event.event_id)
        if event.event_type not in FINAL or event.order_id is None:
            return False
        if event.order_id in self.finished:
            return False
        self.finished.add(event.order_id)
        self.statuses[event.event_type.value.removeprefix("order.")] += 1
        data = event.data
        if event.event_type is EventType.ORDER_FAILED:
            self.failures[str(data.get("failure_reason") or "UNKNOWN")] += 1
        if event.event_type is EventType.ORDER_COMPLETED:
            self._fill(event, data)
        return True

    def _fill(self, event: Event, data: dict[str, object]) -> None:
        asset, user = str(data["asset_id"]), str(event.username)
        quantity = Decimal(str(data["quantity"]))
        usd = Decimal(str(data["total_amount"]))
        for kind, pattern in BUCKETS.items():
            bucket = self.volume[(asset, kind, _bucket(event.occurred_at, pattern))]
            bucket.orders += 1
            bucket.quantity += quantity
            bucket.usd += usd
        buy = str(data["order_type"]).endswith("_BUY")
        fill = Fill(event.occurred_at, str(event.order_id), buy, quantity, usd)
        self.fills[(user, asset)].append(fill)

    def position(self, user: str, asset: str) -> Position:
        position = Position()
        for fill in sorted(self.fills.get((user, asset), [])):
            if fill.buy:
                position.buy(fill.quantity, fill.usd)
            else:
                position.sell(fill.quantity, fill.usd)
        return position

    @property
    def fill_ratio(self) -> Decimal:
        total = sum(self.statuses.values())
        return Decimal(self.statuses["completed"]) / total if total else Decimal(0)


def _bucket(moment: datetime, pattern: str) -> str:
    return moment.strftime(pattern)
