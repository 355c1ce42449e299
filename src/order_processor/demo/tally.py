"""What the mixed load sent and what the event stream answered: counts, the book, and
each command's latency from its send to the event that answers it.

A command is answered by the first event a producer would wait for:

- a market order: its final event (`order.completed`, `order.failed`);
- a resting order (limit, stop, take-profit, trailing): `order.queued` (in the book), or
  a final event if it never rests;
- a cancel: the order's final event after it, or the cancel's own rejection;
- a deposit, a withdrawal: its `balance.*` event (its transaction id is the command's id);
- a conversion: its `balance.converted` event (its conversion id is the command's id);
- any command: its `command.rejected` event (it names the command id).

The seed (the users' first deposits and holdings, sent before the load) is counted but
never timed: its latency is the start-up's, not the system's under load.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from order_processor.demo.per_currency import Flows
from order_processor.domain.commands import (
    AnyCommand,
    CancelOrder,
    Convert,
    Deposit,
    PlaceOrder,
    Withdraw,
)
from order_processor.domain.events import Event, EventType

TERMINAL = {
    EventType.ORDER_COMPLETED,
    EventType.ORDER_FAILED,
    EventType.ORDER_CANCELLED,
    EventType.ORDER_EXPIRED,
}
# A balance event, and the field of its data that names the command it answers.
MONEY = {
    EventType.BALANCE_DEPOSITED: "transaction_id",
    EventType.BALANCE_WITHDRAWN: "transaction_id",
    EventType.BALANCE_CONVERTED: "conversion_id",
}


class Kind(StrEnum):
    """The command kinds whose latency the demo and the benchmark report."""

    MARKET = "market order"
    RESTING = "resting order"
    CANCEL = "cancel"
    DEPOSIT = "deposit"
    WITHDRAW = "withdrawal"
    CONVERT = "conversion"


def kind_of(command: AnyCommand) -> Kind | None:
    if isinstance(command, PlaceOrder):
        return Kind.RESTING if command.payload.order_type.rests else Kind.MARKET
    if isinstance(command, CancelOrder):
        return Kind.CANCEL
    if isinstance(command, Deposit):
        return Kind.DEPOSIT
    if isinstance(command, Withdraw):
        return Kind.WITHDRAW
    if isinstance(command, Convert):
        return Kind.CONVERT
    return None


def percentile(values: list[float], fraction: float) -> float:
    """Of values sorted ascending; 0 for none."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(fraction * len(values)))]


@dataclass
class Pending:
    kind: Kind
    sent_at: float
    command_id: str


@dataclass
class Tally:
    """What the demo sent and what the event stream said about it."""

    sent_at: dict[str, float] = field(default_factory=dict)  # order id -> send time
    final_at: dict[str, float] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)
    commands: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_orders: set[str] = field(default_factory=set)
    pending: dict[str, Pending] = field(default_factory=dict)  # command id -> timed command
    by_order: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    latencies: dict[Kind, list[float]] = field(default_factory=lambda: defaultdict(list))
    refused: Counter[Kind] = field(default_factory=Counter)  # timed commands rejected
    money: Flows = field(default_factory=Flows)  # per currency, from the balance events

    def sent(
        self, commands: list[AnyCommand], *, timed: bool = True, now: float | None = None
    ) -> None:
        at = time.monotonic() if now is None else now
        for command in commands:
            self.commands[command.type.value] += 1
            if isinstance(command, PlaceOrder):
                self.sent_at[command.payload.order_id] = at
            kind = kind_of(command)
            if not timed or kind is None:
                continue
            self.pending[command.command_id] = Pending(kind, at, command.command_id)
            if isinstance(command, PlaceOrder | CancelOrder):
                self.by_order[command.payload.order_id].append(command.command_id)

    def on_event(self, event: Event, applied: bool, *, now: float | None = None) -> None:
        at = time.monotonic() if now is None else now
        if event.event_type is EventType.COMMAND_REJECTED:
            if applied:
                self.rejected[str(event.data.get("reason"))] += 1
                if event.order_id in self.sent_at:
                    self.rejected_orders.add(event.order_id)
            answered = self._answer(str(event.data.get("command_id")), at)
            if answered is not None:
                self.refused[answered.kind] += 1
            return
        if event.event_type in MONEY:
            if applied:
                self.money.on_event(event)
            self._answer(str(event.data.get(MONEY[event.event_type])), at)
            return
        if not applied or event.order_id is None:
            return
        if event.event_type in TERMINAL:
            self.final_at.setdefault(event.order_id, at)
            self.queued.discard(event.order_id)
        elif event.event_type is EventType.ORDER_QUEUED:
            self.queued.add(event.order_id)
        self._order_changed(event, at)

    def _order_changed(self, event: Event, at: float) -> None:
        final = event.event_type in TERMINAL
        for command_id in list(self.by_order.get(event.order_id or "", [])):
            pending = self.pending.get(command_id)
            if pending is None:
                continue
            if final or (
                pending.kind is Kind.RESTING and event.event_type is EventType.ORDER_QUEUED
            ):
                self._answer(command_id, at)

    def _answer(self, command_id: str, at: float) -> Pending | None:
        pending = self.pending.pop(command_id, None)
        if pending is not None:
            self.latencies[pending.kind].append((at - pending.sent_at) * 1000)
        return pending

    @property
    def open_orders(self) -> int:
        return len(set(self.sent_at) - set(self.final_at) - self.rejected_orders)

    def latencies_ms(self, kind: Kind = Kind.MARKET) -> list[float]:
        """Sorted; a resting order's time to final is the market's, so it is timed to the
        book instead."""
        return sorted(self.latencies.get(kind, []))

    def report(self) -> dict[str, dict[str, float]]:
        """Per kind: how many were answered and their p50, p95, p99 in milliseconds."""
        shown: dict[str, dict[str, float]] = {}
        for kind in Kind:
            values = self.latencies_ms(kind)
            if values:
                shown[kind.value] = {
                    "answered": len(values),
                    "p50": round(percentile(values, 0.50), 1),
                    "p95": round(percentile(values, 0.95), 1),
                    "p99": round(percentile(values, 0.99), 1),
                }
        return shown
