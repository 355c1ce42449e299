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
from order_processor.domain.commands import AnyCommand, ResumeOrder
from order_processor.domain.orders import OrderStatus
from order_processor.domain.ports import EventSink, Ledger, MetricsSink, NoMetrics, Snapshot
from order_processor.exceptions import (
    FenceConflictException,
    OrderChangedException,
    OrderProcessorError,
)
from order_processor.saga.decision import Decision, Limits, is_live
from order_processor.saga.faults import Faults
from order_processor.saga.routes import route_of

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
        route = route_of(command)
        for passes in range(MAX_PASSES):
            blind = route.blind if route.blind is not None and not passes else None
            decision = blind(command, self.clock(), self.limits) if blind else None
            if decision is None:
                snapshot = await route.read(self.ledger, command)
                self._note_live(command, snapshot)
                decision = route.decide(snapshot, command, self.clock(), self.limits)
            decision = await self._commit(decision)
            if decision.events:
                await self.events.publish(decision.events)
            if not decision.then:
                return

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
