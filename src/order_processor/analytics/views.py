"""Trading analytics kept from the order events, applied once each whatever the delivery.

Only an order's final event counts (completed, failed, cancelled, expired): an order has
exactly one, and it is the order's last sequence, so at-least-once delivery, copies,
earlier states arriving late and reordering cannot count an order twice; a conversion
counts once per user and conversion id. `analytics.parts` says, purely, what one event
adds; `Views` folds the parts in memory (the rebuild from the orders and users tables,
and the tests), `analytics.store` folds them in DynamoDB (the analytics worker). Both end
in the same `Report`, compared field by field.

- volume and orders per asset and quote currency per minute, hour and day (UTC buckets of
  the final event): an asset's fills are in its quote currency (the order's
  `quote_currency`; an event without one is USD's), and amounts of two currencies are
  never summed together;
- orders by final status and failure reason; the fill ratio (completed of all final);
- final orders per minute by order type and status;
- end-to-end latency from the command's `issued_at` to the final event, as a histogram
  (market orders apart from resting ones, whose time includes the wait for their price);
- per user and asset, by the average-cost method: a buy adds its quantity and its cost
  (what was paid) to the position; a sell realises proceeds minus the average cost of the
  quantity sold, and takes that cost out of the position. The position (exposure) is the
  quantity held through the orders seen, and its cost. Fills are taken in the order they
  happened (the final event's time, then the order id), whatever order they arrive in,
  so a late event gives the same figures as a punctual one. A position is in its fills'
  currency (an asset's quote currency is fixed when it is listed);
- conversions per pair of currencies (`analytics.conversions`), each once: a
  `balance.converted` event, or a market buy paid in another currency.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from order_processor.analytics.amounts import COST_PLACES, EXACT
from order_processor.analytics.conversions import Exchanged
from order_processor.analytics.parts import (
    Contribution,
    Converted,
    Fill,
    MalformedEvent,
    Part,
    part_of,
)
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.events import Event


@dataclass
class Position:
    """One user's position in one asset, through the fills seen, in fill order; its
    amounts in the asset's quote currency."""

    quantity: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # what the quantity held cost
    realised: Decimal = Decimal(0)
    bought: Decimal = Decimal(0)  # paid for buys
    sold: Decimal = Decimal(0)  # received for sells
    fills: int = 0
    last: str = ""  # the sort key of the last fill applied
    currency: str = BASE_CURRENCY

    def add(self, fill: Fill) -> None:
        if self.fills and fill.currency != self.currency:
            raise MalformedEvent(
                f"order {fill.order_id}: a fill in {fill.currency} of a position in "
                f"{self.currency} (an asset's quote currency is fixed when it is listed)"
            )
        self.currency = fill.currency
        with localcontext(EXACT):
            if fill.buy:
                self.quantity += fill.quantity
                self.cost += fill.amount
                self.bought += fill.amount
            else:
                self._sell(fill.quantity, fill.amount)
                self.sold += fill.amount
        self.fills += 1
        self.last = max(self.last, fill.key)

    def _sell(self, quantity: Decimal, proceeds: Decimal) -> None:
        """Average cost of what is sold; a sale beyond the position seen (assets given
        outside orders) realises against no cost for the excess."""
        with localcontext(EXACT):
            covered = min(quantity, self.quantity)
            basis = self.cost * covered / self.quantity if self.quantity else Decimal(0)
            basis = basis.quantize(COST_PLACES, ROUND_HALF_EVEN)
            self.realised += proceeds - basis
            self.cost -= basis
            self.quantity -= covered

    @classmethod
    def of(cls, fills: list[Fill]) -> Position:
        position = cls()
        for fill in sorted(fills):
            position.add(fill)
        return position


@dataclass
class Volume:
    orders: int = 0
    quantity: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)  # in the currency of its key


@dataclass
class Report:
    """The views, as the CLI and the dashboard read them (and the rebuild compares)."""

    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    latency: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    rate: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # minute, type, status
    volume: dict[tuple[str, str, str, str], Volume] = field(
        default_factory=lambda: defaultdict(Volume)
    )  # (asset, currency, bucket kind, bucket) -> volume
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)  # (user, asset)
    conversions: dict[tuple[str, str], Exchanged] = field(
        default_factory=lambda: defaultdict(Exchanged)
    )  # (currency sold, currency bought) -> conversions

    @property
    def fill_ratio(self) -> Decimal:
        total = sum(self.statuses.values())
        return Decimal(self.statuses["completed"]) / total if total else Decimal(0)

    def differences(self, other: Report) -> list[str]:
        """What differs from `other`, one line each (empty: the same views)."""
        lines: list[str] = []
        for name in ("statuses", "failures", "rate"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key in sorted(set(mine) | set(theirs), key=str):
                if mine[key] != theirs[key]:
                    lines.append(f"{name} {key}: {mine[key]} != {theirs[key]}")
        for kind in sorted(set(self.latency) | set(other.latency)):
            if +self.latency.get(kind, Counter()) != +other.latency.get(kind, Counter()):
                lines.append(
                    f"latency {kind}: {dict(self.latency.get(kind, {}))} != "
                    f"{dict(other.latency.get(kind, {}))}"
                )
        for name in ("volume", "positions", "conversions"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key in sorted(set(mine) | set(theirs)):
                if _figures(mine.get(key)) != _figures(theirs.get(key)):
                    lines.append(f"{name} {key}: {mine.get(key)} != {theirs.get(key)}")
        return lines


def _figures(value: Volume | Position | Exchanged | None) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if isinstance(value, Volume):
        return (value.orders, value.quantity, value.amount)
    if isinstance(value, Exchanged):
        return value.figures()
    p = value
    return (p.quantity, p.cost, p.realised, p.bought, p.sold, p.fills, p.currency)


@dataclass
class Views:
    """The views folded in memory: the rebuild from the orders table, and the reference
    the stored views are compared with."""

    applied: set[str] = field(default_factory=set)  # event ids
    markers: set[str] = field(default_factory=set)  # the orders and conversions counted
    counters: Report = field(default_factory=Report)  # all but the positions
    fills: dict[tuple[str, str], list[Fill]] = field(
        default_factory=lambda: defaultdict(list)
    )  # (user, asset) -> fills, as they arrived

    def apply(self, event: Event) -> bool:
        """Apply one event; False when it changes nothing (a copy, one that counts
        nothing, or its order or conversion already counted)."""
        if event.event_id in self.applied:
            return False
        self.applied.add(event.event_id)
        part = part_of(event)
        if part is None or part.marker in self.markers:
            return False
        self.markers.add(part.marker)
        add(self.counters, part)
        if isinstance(part, Contribution) and part.fill is not None:
            self.fills[(part.username, part.asset_id)].append(part.fill)
        return True

    def report(self) -> Report:
        """The views; positions from the fills in the order they happened."""
        report = copy.deepcopy(self.counters)
        report.positions = {key: Position.of(fills) for key, fills in self.fills.items()}
        return report

    def position(self, user: str, asset: str) -> Position:
        return Position.of(self.fills.get((user, asset), []))


def add(report: Report, part: Part) -> None:
    """A part's counters (not its position, which depends on the fill order)."""
    if part.conversion is not None:
        report.conversions[(part.conversion.sell, part.conversion.buy)].add(part.conversion)
    if isinstance(part, Converted):
        return
    report.statuses[part.status] += 1
    if part.failure_reason:
        report.failures[part.failure_reason] += 1
    if part.latency:
        kind, bucket = part.latency
        report.latency[kind][bucket] += 1
    report.rate[(part.minute, part.order_type, part.status)] += 1
    if part.fill is not None:
        for kind, bucket in part.buckets():
            volume = report.volume[(part.asset_id, part.fill.currency, kind, bucket)]
            volume.orders += 1
            with localcontext(EXACT):
                volume.quantity += part.fill.quantity
                volume.amount += part.fill.amount
