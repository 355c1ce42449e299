"""The limit matcher: a price update moves the inventory price, moves the trailing stops
it improves on (their best price and stop, through the sparse TrailingStops index), and
sends one ExecuteOrder per QUEUED order that price triggers: limit orders through the
sparse OpenLimitOrders index, conditional ones (stop, take-profit, trailing stop) through
OpenStopOrders.

It decides nothing about money: execution re-checks the order and the price under the
user's lock, so a repeated, late or out-of-order update can never execute an order twice.
ExecuteOrder ids derive from the order and the update, so a redelivered update (a matcher
that crashed between query and send) sends the same ids again, and execution's re-check
under the lock absorbs them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from order_processor.domain.assets import Asset
from order_processor.domain.base import utc_now
from order_processor.domain.commands import (
    ExecuteOrder,
    ExecutePayload,
    ServiceName,
    UpdatePrice,
    derived_id,
)
from order_processor.domain.events import order_event
from order_processor.domain.orders import Order
from order_processor.domain.ports import (
    CommandSink,
    EventSink,
    Inventory,
    MetricsSink,
    NoMetrics,
    OrderBook,
)
from order_processor.domain.steps import Step
from order_processor.domain.triggers import triggered
from order_processor.exceptions import (
    CommandRejected,
    OrderProcessorError,
    Reason,
    StalePriceException,
)
from order_processor.handlers.admission import Admission
from order_processor.handlers.answers import from_sender, reject
from order_processor.handlers.trails import move_trails
from order_processor.messaging.consumer import Ack, Message, Outcome, Retry
from order_processor.messaging.producer import UNSIGNED, signed_by
from order_processor.saga.faults import Faults
from order_processor.security.audit import AuditLogger

log = logging.getLogger(__name__)
SERVICE_NAME = ServiceName.LIMIT_MATCHER
# Batches of ten ExecuteOrders in flight at once: they are independent of each other, so
# their order on the queue does not matter, and 1,000 batches one after another take
# about 10 s at SQS's latency. A FIFO queue (not in high-throughput mode) accepts 300
# SendMessageBatch calls a second: two in flight stay well under it at ~10 ms a call.
SEND_IN_FLIGHT = 8
FIFO_SEND_IN_FLIGHT = 2


@dataclass(frozen=True)
class PriceMatcher:
    assets: Inventory
    orders: OrderBook
    commands: CommandSink
    admission: Admission
    publisher: EventSink
    audit: AuditLogger
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], datetime] = utc_now
    metrics: MetricsSink = field(default_factory=NoMetrics)

    def group_of(self, message: Message) -> str:
        return message.message_id  # updates are independent of each other

    async def handle_group(self, key: str, messages: list[Message]) -> dict[str, Outcome]:
        return {message.message_id: await self._handle(message) for message in messages}

    async def _handle(self, message: Message) -> Outcome:
        try:
            admitted = self.admission.admit(message.body)
        except CommandRejected as rejection:
            await self._reject(message, rejection)
            return Ack()
        command, sender = admitted.command, admitted.sender
        try:
            if not isinstance(command, UpdatePrice):
                raise CommandRejected(
                    Reason.UNSUPPORTED_COMMAND, f"{command.type} is not a price update"
                )
            await self.apply(command, redelivered=message.receive_count > 1)
        except CommandRejected as rejection:
            await self._reject(message, from_sender(rejection, sender))
        except OrderProcessorError as exc:
            if exc.retryable:
                return Retry()
            await self._reject(message, CommandRejected(exc.code, exc.message, identity=sender))
        return Ack()

    async def _reject(self, message: Message, rejection: CommandRejected) -> None:
        self.metrics.inc("commands_rejected_total", reason=rejection.reason)
        await reject(message, rejection, self.publisher, self.audit)

    async def apply(self, update: UpdatePrice, *, redelivered: bool = False) -> list[ExecuteOrder]:
        """Trails first, then the price, then the matching. Every price the feed observed
        after a trailing stop was placed is a candidate peak of it, even one that arrives
        after a newer price (the queue is unordered, a redelivery comes late): the moves
        only ever improve a stop, so they run whatever the price write says."""
        asset_id, price = update.payload.asset_id, update.payload.price
        trailed = await self._move_trails(update, redelivered)
        try:
            # The feed's signed time orders its updates (admission refuses one dated beyond
            # the clock skew). Not clamped to this clock: a replayed copy must meet the
            # same time it was first applied at, and be refused as not newer.
            await self.assets.update_price(
                asset_id, price, as_of=update.issued_at, command_id=update.command_id
            )
        except StalePriceException as stale:
            log.info("ignored a stale price of %s (%s)", asset_id, update.issued_at)
            self.metrics.inc("price_updates_stale_total")
            # A late peak may have moved a stop past the market: matched at the price
            # that stands, as a rematch would, without waiting for one. Only the stops
            # this update moved can be such: every other order was matched at that price
            # by the update that set it, so nothing is queried again.
            current: Asset | None = stale.details.get("current")
            if current is None:
                return []
            past = [order for order in trailed if triggered(order, current.price)]
            return await self._execute(past, update.command_id)
        except OrderProcessorError as exc:
            if exc.code is Reason.ASSET_NOT_FOUND:
                raise CommandRejected(Reason.UNKNOWN_ASSET, exc.message) from exc
            raise
        self.metrics.inc("price_updates_total")
        return await self._match(asset_id, price, update.command_id)

    async def _match(self, asset_id: str, price: Decimal, cause: str) -> list[ExecuteOrder]:
        return await self._execute(await self.orders.triggered_orders(asset_id, price), cause)

    async def _execute(self, orders: list[Order], cause: str) -> list[ExecuteOrder]:
        commands = self._executions(orders, cause)
        self.faults.after_commit(Step.MATCHED)  # the crash test: after the query, before sending
        await self._send(commands)
        self.metrics.inc("orders_triggered_total", len(commands), cause="update")
        return commands

    async def _move_trails(self, update: UpdatePrice, redelivered: bool) -> list[Order]:
        """Each move is a state of its own (QUEUED, its sequence up by one): announced
        after it is written. A redelivered update (its publish failed, its matcher
        crashed) announces again the trails standing at its price, with the events' same
        ids: the latest state of an order is never left unannounced."""
        payload = update.payload
        trailed = await move_trails(self.orders, payload.asset_id, payload.price, update.issued_at)
        self.faults.after_commit(Step.TRAILED)  # the crash test: trails moved, nothing announced
        self.metrics.inc("trailing_stops_moved_total", len(trailed))
        if redelivered:
            standing = await self.orders.trails_at(payload.asset_id, payload.price)
            moved = {order.order_id for order in trailed}
            trailed += [order for order in standing if order.order_id not in moved]
        await self._announce_trails(trailed)
        return trailed

    async def _announce_trails(self, trailed: list[Order]) -> None:
        if trailed:
            await self.publisher.publish([order_event(order) for order in trailed])

    async def rematch(self, now: datetime) -> list[ExecuteOrder]:
        """Defence in depth for a lost ExecuteOrder (its short-lived token expired in a
        backlog, a purged queue): every QUEUED order that the inventory's current price
        triggers is sent an ExecuteOrder again. Execution re-checks everything under the
        user's lock, so a repeat is harmless; ids derive from the order and the minute."""
        commands: list[ExecuteOrder] = []
        async for asset in self.assets.every_asset(active_only=True):
            # A trailing stop an index hid from its update follows the price that stands.
            moved = await move_trails(self.orders, asset.asset_id, asset.price, asset.price_as_of)
            self.metrics.inc("trailing_stops_moved_total", len(moved))
            await self._announce_trails(moved)
            due = await self.orders.triggered_orders(asset.asset_id, asset.price)
            commands += self._executions(due, f"rematch:{now:%Y%m%dT%H%M}")
        for command in commands:
            log.warning("rematch: order %s is triggered and still QUEUED", command.payload.order_id)
        await self._send(commands)
        self.metrics.inc("orders_triggered_total", len(commands), cause="rematch")
        return commands

    async def _send(self, commands: list[ExecuteOrder]) -> None:
        fifo = self.commands.fifo
        await self.commands.send_batch(
            commands, in_flight=FIFO_SEND_IN_FLIGHT if fifo else SEND_IN_FLIGHT, independent=True
        )

    def _executions(self, orders: list[Order], cause: str) -> list[ExecuteOrder]:
        return [
            signed_by(
                self.admission.tokens,
                SERVICE_NAME,
                ExecuteOrder(
                    command_id=derived_id("execute", order.order_id, cause),
                    username=order.username,
                    auth=UNSIGNED,
                    payload=ExecutePayload(order_id=order.order_id, asset_id=order.asset_id),
                ),
            )
            for order in orders
        ]
