"""Trading analytics kept from the order events, applied once each whatever the delivery.

Only an order's final event counts (completed, failed, cancelled, expired): an order has
exactly one, and it is the order's last sequence, so at-least-once delivery, copies,
earlier states arriving late and reordering cannot count an order twice. `contribution`
says, purely, what one final event adds; `Views` folds contributions in memory (the
rebuild from the orders table, and the tests), `analytics.store` folds them in DynamoDB
(the analytics worker). Both end in the same `Report`, compared field by field.

- volume and orders per asset per minute, hour and day (UTC buckets of the final event);
- orders by final status and failure reason; the fill ratio (completed of all final);
- final orders per minute by order type and status;
- end-to-end latency from the command's `issued_at` to the final event, as a histogram
  (market orders apart from resting ones, whose time includes the wait for their price);
- per user and asset, by the average-cost method: a buy adds its quantity and its cost
  (what was paid) to the position; a sell realises proceeds minus the average cost of the
  quantity sold, and takes that cost out of the position. The position (exposure) is the
  quantity held through the orders seen, and its cost. Fills are taken in the order they
  happened (the final event's time, then the order id), whatever order they arrive in,
  so a late event gives the same figures as a punctual one.
"""

from __future__ import annotations

import copy
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from pydantic import ValidationError

from order_processor.domain.commands import describe_errors
from order_processor.domain.events import STATUS_EVENTS, Event, EventType
from order_processor.domain.orders import OrderResponse

FINAL = {
    EventType.ORDER_COMPLETED,
    EventType.ORDER_FAILED,
    EventType.ORDER_CANCELLED,
    EventType.ORDER_EXPIRED,
}
BUCKETS = {"minute": "%Y-%m-%dT%H:%M", "hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}
# Latency histogram bounds in milliseconds (1-2-5 steps up to an hour; then "longer").
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    *(step * 10**power for power in range(6) for step in (1, 2, 5)),
    1_000_000,
    2_000_000,
    3_600_000,
)
LONGER = "longer"
REASON = re.compile(r"[A-Z][A-Z_]{0,63}")  # failure reasons are the saga's codes
COST_PLACES = Decimal("1E-10")  # cost and P&L kept to 10 decimal places (DynamoDB: 38 digits)
# Every sum of the views in this context: a quantity carries up to 33 digits (15 integer
# digits, 18 places), more than the default context's 28, which would round them silently.
EXACT = Context(prec=60)


@dataclass
class Position:
    """One user's position in one asset, through the fills seen, in fill order."""

    quantity: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # what the quantity held cost
    realised: Decimal = Decimal(0)
    bought: Decimal = Decimal(0)  # USD paid for buys
    sold: Decimal = Decimal(0)  # USD received for sells
    fills: int = 0
    last: str = ""  # the sort key of the last fill applied

    def add(self, fill: Fill) -> None:
        with localcontext(EXACT):
            if fill.buy:
                self.quantity += fill.quantity
                self.cost += fill.usd
                self.bought += fill.usd
            else:
                self._sell(fill.quantity, fill.usd)
                self.sold += fill.usd
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


@dataclass(frozen=True, order=True)
class Fill:
    at: datetime
    order_id: str
    buy: bool
    quantity: Decimal
    usd: Decimal

    @property
    def key(self) -> str:
        """Sorts as the fills happened: (UTC time, order id), as text. The year has its
        four digits whatever it is (strftime's %Y drops the leading zeros of a year
        before 1000, which would sort after every later year)."""
        return f"{self.at.year:04d}-{self.at.strftime('%m-%dT%H:%M:%S.%f')}#{self.order_id}"


@dataclass
class Volume:
    orders: int = 0
    quantity: Decimal = Decimal(0)
    usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class Contribution:
    """What one order's final event adds to the views."""

    event_id: str
    order_id: str
    username: str
    asset_id: str
    order_type: str
    status: str  # completed, failed, cancelled, expired
    at: datetime
    failure_reason: str | None = None
    latency: tuple[str, str] | None = None  # (market|resting, histogram bucket)
    fill: Fill | None = None

    def buckets(self) -> list[tuple[str, str]]:
        return [(kind, self.at.strftime(pattern)) for kind, pattern in BUCKETS.items()]

    @property
    def minute(self) -> str:
        return self.at.strftime(BUCKETS["minute"])


class MalformedEvent(ValueError):
    """A final order event without the fields the views need."""


def contribution(event: Event) -> Contribution | None:
    """What a final order event contributes; None for any other event. Its data must be
    the order it names, in the status its type says (an event is untrusted input until
    then: the analytics queue is an SQS queue like any other)."""
    if event.event_type not in FINAL:
        return None
    try:
        order = OrderResponse.model_validate(event.data)
    except ValidationError as exc:
        raise MalformedEvent(f"event {event.event_id}: {describe_errors(exc)}") from exc
    if (
        order.order_id != event.order_id
        or order.username != event.username
        or STATUS_EVENTS.get(order.status) is not event.event_type
    ):
        raise MalformedEvent(f"event {event.event_id}: its data is another order or status")
    fill = None
    if event.event_type is EventType.ORDER_COMPLETED:
        if order.total_amount is None:
            raise MalformedEvent(f"event {event.event_id}: a completed order without its total")
        fill = Fill(
            event.occurred_at,
            order.order_id,
            order.order_type.value.endswith("_BUY"),
            order.quantity,
            order.total_amount,
        )
    reason = None
    if event.event_type is EventType.ORDER_FAILED:
        reason = order.failure_reason if REASON.fullmatch(order.failure_reason or "") else "OTHER"
    latency = None
    if order.issued_at is not None:  # orders placed before it was recorded have none
        milliseconds = max((event.occurred_at - order.issued_at).total_seconds() * 1000, 0)
        kind = "market" if order.order_type.value.startswith("MARKET_") else "resting"
        latency = (kind, latency_bucket(milliseconds))
    return Contribution(
        event_id=event.event_id,
        order_id=order.order_id,
        username=order.username,
        asset_id=order.asset_id,
        order_type=order.order_type.value,
        status=event.event_type.value.removeprefix("order."),
        at=event.occurred_at,
        failure_reason=reason,
        latency=latency,
        fill=fill,
    )


def latency_bucket(milliseconds: float) -> str:
    for bound in LATENCY_BOUNDS_MS:
        if milliseconds <= bound:
            return str(bound)
    return LONGER


def percentile(histogram: Counter[str], fraction: float) -> int | None:
    """The bound in ms under which `fraction` of the samples fall (None: no sample;
    -1: beyond the last bound)."""
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for bound in LATENCY_BOUNDS_MS:
        seen += histogram[str(bound)]
        if seen >= fraction * total:
            return bound
    return -1


@dataclass
class Report:
    """The views, as the CLI and the dashboard read them (and the rebuild compares)."""

    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    latency: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    rate: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # minute, type, status
    volume: dict[tuple[str, str, str], Volume] = field(
        default_factory=lambda: defaultdict(Volume)
    )  # (asset, bucket kind, bucket) -> volume
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)  # (user, asset)

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
        for name in ("volume", "positions"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key in sorted(set(mine) | set(theirs)):
                if _figures(mine.get(key)) != _figures(theirs.get(key)):
                    lines.append(f"{name} {key}: {mine.get(key)} != {theirs.get(key)}")
        return lines


def _figures(value: Volume | Position | None) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if isinstance(value, Volume):
        return (value.orders, value.quantity, value.usd)
    return (value.quantity, value.cost, value.realised, value.bought, value.sold, value.fills)


@dataclass
class Views:
    """The views folded in memory: the rebuild from the orders table, and the reference
    the stored views are compared with."""

    applied: set[str] = field(default_factory=set)  # event ids
    finished: set[str] = field(default_factory=set)  # order ids with their final event
    counters: Report = field(default_factory=Report)  # all but the positions
    fills: dict[tuple[str, str], list[Fill]] = field(
        default_factory=lambda: defaultdict(list)
    )  # (user, asset) -> fills, as they arrived

    def apply(self, event: Event) -> bool:
        """Apply one event; False when it changes nothing (a copy, not final, or its
        order already finished)."""
        if event.event_id in self.applied:
            return False
        self.applied.add(event.event_id)
        part = contribution(event)
        if part is None or part.order_id in self.finished:
            return False
        self.finished.add(part.order_id)
        add(self.counters, part)
        if part.fill is not None:
            self.fills[(part.username, part.asset_id)].append(part.fill)
        return True

    def report(self) -> Report:
        """The views; positions from the fills in the order they happened."""
        report = copy.deepcopy(self.counters)
        report.positions = {key: Position.of(fills) for key, fills in self.fills.items()}
        return report

    def position(self, user: str, asset: str) -> Position:
        return Position.of(self.fills.get((user, asset), []))


def add(report: Report, part: Contribution) -> None:
    """A contribution's counters (not its position, which depends on the fill order)."""
    report.statuses[part.status] += 1
    if part.failure_reason:
        report.failures[part.failure_reason] += 1
    if part.latency:
        kind, bucket = part.latency
        report.latency[kind][bucket] += 1
    report.rate[(part.minute, part.order_type, part.status)] += 1
    if part.fill is not None:
        for kind, bucket in part.buckets():
            volume = report.volume[(part.asset_id, kind, bucket)]
            volume.orders += 1
            with localcontext(EXACT):
                volume.quantity += part.fill.quantity
                volume.usd += part.fill.usd
