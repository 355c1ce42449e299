"""The sweeper: expiry and recovery, by index queries, never by scans.

Expiry: QUEUED orders whose expiry has passed, found through the sparse ExpiryIndex, each
sent an ExpireOrder. The order worker decides by its own clock whether the order is due
and releases the hold under the lock, so a sweeper whose clock runs ahead expires nothing
early.

Recovery (defence in depth): an order left PENDING or PROCESSING is normally finished by
the redelivery of its own message, or by any later command that finds it. If that message
is gone (a purged DLQ, an operator's mistake, a bug), nothing would touch it again, so
orders unchanged for longer than `recovery_age`, found through the sparse InFlightIndex,
are each sent a ResumeOrder: the same steps under the same lock and fencing.

Command ids derive from the order and the minute (and, for recovery, the order's
sequence); a repeat is harmless: the worker re-checks the order under the lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from order_processor.domain.commands import (
    ExpireOrder,
    OrderReference,
    ResumeOrder,
    ServiceName,
    derived_id,
)
from order_processor.domain.ports import CommandSink, MetricsSink, NoMetrics, OrderBook
from order_processor.messaging.producer import UNSIGNED, signed_by
from order_processor.security.tokens import TokenManager

log = logging.getLogger(__name__)
SERVICE_NAME = ServiceName.EXPIRY_SWEEPER


@dataclass(frozen=True)
class ExpirySweeper:
    orders: OrderBook
    commands: CommandSink
    tokens: TokenManager
    recovery_age: timedelta = timedelta(minutes=5)
    metrics: MetricsSink = field(default_factory=NoMetrics)

    async def sweep(self, now: datetime) -> list[ExpireOrder]:
        """ExpireOrder for every order due at `now` by the sweeper's clock."""
        due = await self.orders.due_orders(now)
        minute = _minute(now)
        commands = [
            signed_by(
                self.tokens,
                SERVICE_NAME,
                ExpireOrder(
                    command_id=derived_id("expire", order.order_id, minute),
                    username=order.username,
                    auth=UNSIGNED,
                    payload=OrderReference(order_id=order.order_id),
                ),
            )
            for order in due
        ]
        await self.commands.send_batch(commands, independent=True)
        self.metrics.inc("orders_expired_total", len(commands))
        return commands

    async def recover(self, now: datetime) -> list[ResumeOrder]:
        """ResumeOrder for every order PENDING or PROCESSING since before now - age."""
        stalled = await self.orders.stalled_orders(now - self.recovery_age)
        minute = _minute(now)
        commands = []
        for order in stalled:
            log.warning(
                "recovery: order %s of %s is %s since %s (step %s); sending ResumeOrder",
                order.order_id,
                order.username,
                order.status,
                order.updated_at.isoformat(),
                order.step,
            )
            self.metrics.inc("orders_recovery_sent_total", status=order.status.value)
            resume = ResumeOrder(
                command_id=derived_id("resume", order.order_id, str(order.sequence), minute),
                username=order.username,
                auth=UNSIGNED,
                payload=OrderReference(order_id=order.order_id),
            )
            commands.append(signed_by(self.tokens, SERVICE_NAME, resume))
        await self.commands.send_batch(commands, independent=True)
        return commands


def _minute(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M")
