"""The saga engine: a command read, decided, written and announced.

    read (one batched read) → decide (pure) → write (one fenced transaction)
         → [refused: the decision's answer, written instead] → publish (one batch)

A market order costs one read, one write and one publish; so does a limit order placed,
executed, cancelled or expired, and a deposit or a withdrawal. Events go out after the
write and before the message is deleted: a crash in between re-delivers the command,
which finds the stored state and publishes its event again (the states a fused write
passed through, such as `order.accepted` and `order.processing` of a market order, are
announced only with it and are skipped by such a crash; the stored state's never is).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from order_processor.domain.base import utc_now
from order_processor.domain.commands import (
    AnyCommand,
    CancelOrder,
    Deposit,
    ExecuteOrder,
    ExpireOrder,
    PlaceOrder,
    ResumeOrder,
    Withdraw,
)
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.ports import EventSink, Ledger, MetricsSink, NoMetrics, Snapshot
from order_processor.exceptions import (
    CommandRejected,
    FenceConflictException,
    OrderChangedException,
    OrderProcessorError,
    Reason,
)
from order_processor.saga import orders
from order_processor.saga.decision import Decision, Limits, is_live
from order_processor.saga.faults import Faults
from order_processor.saga.funds import move_funds

log = logging.getLogger(__name__)
MAX_PASSES = 3  # a command that first takes on an order left mid-saga needs two
CONFLICT_ATTEMPTS = 8


@dataclass(frozen=True)
class Saga:
    ledger: Ledger
    events: EventSink
    limits: Limits
    clock: Callable[[], datetime] = utc_now
    faults: Faults = field(default_factory=Faults)
    metrics: MetricsSink = field(default_factory=NoMetrics)

    async def handle(self, command: AnyCommand) -> None:
        """Carry the command out, or raise CommandRejected (the handler answers it) or a
        retryable error (the handler hands the message back).

        A write refused because another writer got there first (the user's fence moved,
        or the order changed) is decided again from a fresh read, a few times with a
        short jittered pause, before the message is handed back: contention for one user
        (a standard queue, several workers) costs a read and a write, not a receive."""
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                await self._carry_out(command)
                return
            except (FenceConflictException, OrderChangedException):
                self.metrics.inc("lock_busy_total")
                if attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311

    async def _carry_out(self, command: AnyCommand) -> None:
        for passes in range(MAX_PASSES):
            if isinstance(command, Deposit | Withdraw):
                # Decided from nothing read first: a look only when its id was used.
                looked = await self._read(command) if passes else None
                decision = await self._commit(
                    move_funds(looked, command, self.clock(), self.limits)
                )
            else:
                snapshot = await self._read(command)
                self._note_live(command, snapshot)
                decision = await self._commit(self._decide(command, snapshot))
            if decision.events:
                await self.events.publish(decision.events)
            if not decision.then:
                return

    async def _read(self, command: AnyCommand) -> Snapshot:
        if isinstance(command, Deposit | Withdraw):
            return await self.ledger.read(command.username, funds_id=command.command_id)
        if isinstance(command, PlaceOrder):
            payload = command.payload
            return await self.ledger.read(
                command.username, order_id=payload.order_id, asset_id=payload.asset_id
            )
        if not isinstance(command, CancelOrder | ExecuteOrder | ExpireOrder | ResumeOrder):
            raise CommandRejected(
                Reason.UNSUPPORTED_COMMAND, f"{command.type} goes to the price-updates queue"
            )
        asset_id = command.payload.asset_id if isinstance(command, ExecuteOrder) else None
        snapshot = await self.ledger.read(
            command.username, order_id=command.payload.order_id, asset_id=asset_id
        )
        order = snapshot.order
        wrong_asset = (
            snapshot.asset is None or snapshot.asset.asset_id != order.asset_id if order else False
        )
        if order is not None and wrong_asset and _needs_price(command, order):
            # The command did not say which asset, or said another: the order's own asset
            # prices it, whatever a command names. Read again with it.
            return await self.ledger.read(
                command.username, order_id=order.order_id, asset_id=order.asset_id
            )
        return snapshot

    def _note_live(self, command: AnyCommand, snapshot: Snapshot) -> None:
        """An order found mid-saga (left by a v1 worker, or what no test foresaw): counted,
        and logged when the recovery job sent for it."""
        order = snapshot.order
        if order is None or not is_live(order):
            return
        self.metrics.inc("orders_resumed_total", status=order.status.value)
        if isinstance(command, ResumeOrder):
            self.metrics.inc("orders_recovered_total", status=order.status.value)
            log.warning(
                "recovering order %s, %s since %s", order.order_id, order.status, order.updated_at
            )

    def _decide(self, command: AnyCommand, snapshot: Snapshot) -> Decision:
        at, limits = self.clock(), self.limits
        if isinstance(command, PlaceOrder):
            return orders.place_order(snapshot, command, at, limits)
        if isinstance(command, CancelOrder):
            return orders.cancel_order(snapshot, command, at, limits)
        if isinstance(command, ExecuteOrder):
            return orders.execute_order(snapshot, command, at, limits)
        if isinstance(command, ExpireOrder):
            return orders.expire_order(snapshot, command, at, limits)
        if isinstance(command, ResumeOrder):
            return orders.resume_order(snapshot, command, at, limits)
        raise AssertionError(f"{command.type} is decided without a read")

    async def _commit(self, decision: Decision) -> Decision:
        """Write the decision (with the fault hooks around it); if the write is refused
        for a reason the decision answers, write its answer instead."""
        write = decision.write
        if write is None:
            return decision
        order_id = write.order.order_id if write.order else None
        structlog.contextvars.bind_contextvars(order_id=order_id, step=write.step)
        started = time.perf_counter()
        try:
            self.faults.before(write.step)
            await self.ledger.write(write)
        except OrderProcessorError as refusal:
            if refusal.retryable or decision.refused is None:
                raise
            return await self._commit(decision.refused(refusal))
        self.faults.after_commit(write.step)
        self.metrics.observe("saga_step_seconds", time.perf_counter() - started, step=write.step)
        if write.order is not None and write.order.status is OrderStatus.FAILED:
            reason = write.order.failure_reason or "unknown"
            self.metrics.inc("orders_failed_total", reason=reason)
        return decision


def _needs_price(command: AnyCommand, order: Order) -> bool:
    """To execute a QUEUED order, or to take on one left PENDING."""
    if order.status is OrderStatus.PENDING:
        return True
    return order.status is OrderStatus.QUEUED and isinstance(command, ExecuteOrder)
