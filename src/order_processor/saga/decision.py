"""What a command does, decided from what it read: a `Decision` is one fenced write (or
none) and the events to publish once it has committed, with what to do instead if the
write is refused for a reason the saga can answer (funds, holdings, limits, a step that
failed for good).

An order's steps (accept, hold, debit, credit, record) that nothing can come between are
one write: a market order goes from nothing to COMPLETED in one TransactWriteItems, and
the events of the states it passes through (accepted, processing, completed) are
published together after it. Each state keeps its own sequence, so followers see the same
events as if each step had been its own write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from order_processor.domain.currencies import DEFAULT_CURRENCIES
from order_processor.domain.events import Event, order_event
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.ports import LedgerWrite, Snapshot
from order_processor.domain.steps import Step
from order_processor.exceptions import (
    BalanceNotFoundException,
    CommandRejected,
    InsufficientAssetBalanceException,
    InsufficientBalanceException,
    OrderProcessorError,
    Reason,
    StepFailure,
)
from order_processor.saga.records import Records


@dataclass(frozen=True)
class Limits:
    max_order_value: Decimal
    daily_deposit: Decimal
    daily_withdraw: Decimal
    stop_slippage_percent: Decimal = Decimal(5)  # a stop buy holds its stop plus this
    # The clock skew admission allows: an observation dated beyond twice this ahead of the
    # worker's clock (a listing from a laptop's clock far ahead) is not trusted as a time.
    clock_skew: timedelta = timedelta(seconds=30)
    # The currencies accepted (the base among them), the spread a conversion keeps off
    # the mid rate and the oldest rate a decision may use (domain.fx).
    currencies: frozenset[str] = frozenset(DEFAULT_CURRENCIES)
    fx_spread_percent: Decimal = Decimal("0.50")
    fx_max_age: timedelta = timedelta(minutes=5)

    @property
    def rate_ahead(self) -> timedelta:
        """How far ahead of the worker's clock a rate may be dated and still have an age
        (domain.fx): twice the clock skew, as the rates' store takes it."""
        return 2 * self.clock_skew

    def accepting(self, *currencies: str) -> None:
        """CommandRejected (CURRENCY_NOT_ENABLED) unless each currency is enabled."""
        for currency in currencies:
            if currency not in self.currencies:
                raise CommandRejected(
                    Reason.CURRENCY_NOT_ENABLED,
                    f"{currency} is not one of the currencies this exchange holds "
                    f"({', '.join(sorted(self.currencies))})",
                )


@dataclass(frozen=True)
class Decision:
    """`then`: the command is not done after this write (it found its order mid-saga and
    took it on first): read again and decide again."""

    write: LedgerWrite | None
    events: tuple[Event, ...] = ()
    refused: Refused | None = None
    then: bool = False


Refused = Callable[[OrderProcessorError], Decision]
NOTHING = Decision(None)


def moved(order: Order, at: datetime, step: Step, **changes: Any) -> Order:
    """The order one state further: its sequence up by one, its step marker set."""
    return order.evolve(**changes, step=step, sequence=order.sequence + 1, updated_at=at)


def order_write(
    snapshot: Snapshot,
    states: list[Order],
    records: Records = ((), ()),
    replaces: Order | None = None,
    refused: Refused | None = None,
) -> Decision:
    """Write the last of `states` (replacing `replaces`, or new) with `records`; publish an
    event for each state, in order."""
    final = states[-1]
    assert final.step is not None  # every state written has been `moved` (or accepted)
    cash, assets = records
    write = LedgerWrite(
        username=snapshot.username,
        fence=snapshot.fence,
        at=final.updated_at,
        step=final.step,
        order=final,
        replaces=replaces,
        cash=cash,
        assets=assets,
    )
    return Decision(write, tuple(order_event(s) for s in states), refused)


def again(order: Order) -> Decision:
    """Nothing to write: the stored state's event published again (same id), for the
    redelivery of a command whose publish a crash may have skipped."""
    return Decision(None, (order_event(order),))


def failed(
    snapshot: Snapshot, pending: Order, before: list[Order], at: datetime, reason: Reason
) -> Decision:
    """A PENDING order ended FAILED, nothing moved; `before` are the states to announce
    first (the accepted one, for a new order)."""
    failure = moved(pending, at, Step.FAILED, status=OrderStatus.FAILED, failure_reason=reason)
    return order_write(snapshot, [*before, failure], replaces=snapshot.order)


def ends_with(end: Callable[[Reason], Decision]) -> Refused:
    """What a write refused for the order's own reason does instead: `end`, given that
    reason. Any other refusal is not the order's fault (a bug, a conflict): raised again."""

    def refused(refusal: OrderProcessorError) -> Decision:
        reason = failure_reason(refusal)
        if reason is None:
            raise refusal
        return end(reason)

    return refused


def failure_reason(refusal: OrderProcessorError) -> Reason | None:
    """The FAILED reason an order gets when its write is refused, or None if the refusal
    is not the order's fault (a bug, a conflict) and must not end it."""
    if isinstance(refusal, InsufficientAssetBalanceException):
        return Reason.INSUFFICIENT_ASSET_BALANCE
    if isinstance(refusal, InsufficientBalanceException | BalanceNotFoundException):
        return Reason.INSUFFICIENT_BALANCE  # no USD balance item (data older than v2): none
    if isinstance(refusal, StepFailure):  # a step that failed for good
        return refusal.code
    return None


def is_live(order: Order) -> bool:
    return order.status in {OrderStatus.PENDING, OrderStatus.PROCESSING}
