"""The limit matcher: a price update moves the inventory price and, from the price it
replaced, knows which way the market moved; one query of that side of the book (the
sparse FallTriggers or RiseTriggers index) finds every QUEUED order the move reaches: the
trailing stops it improves on (their best price and stop move) and the orders it
triggers (one ExecuteOrder each). A price update that moves nothing thus costs two AWS
calls, one that does not move the price one.

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
    UpdateRate,
    derived_id,
)
from order_processor.domain.currencies import DEFAULT_CURRENCIES
from order_processor.domain.events import order_event
from order_processor.domain.orders import Order
from order_processor.domain.ports import (
    CommandSink,
    EventSink,
    ExchangeRates,
    Inventory,
    MetricsSink,
    NoMetrics,
    OrderBook,
)
from order_processor.domain.steps import Step
from order_processor.domain.triggers import PriceMove, price_move, triggered
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
    rates: ExchangeRates | None = None  # UpdateRate's store (None: this matcher takes none)
    currencies: frozenset[str] = frozenset(DEFAULT_CURRENCIES)  # the rates it takes

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
            if isinstance(command, UpdateRate) and self.rates is not None:
                await self.apply_rate(command)
            elif isinstance(command, UpdatePrice):
                await self.apply(command, redelivered=message.receive_count > 1)
            else:
                raise CommandRejected(
                    Reason.UNSUPPORTED_COMMAND, f"{command.type} is not a price update"
                )
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

    async def apply_rate(self, update: UpdateRate) -> None:
        """A currency's rate, written if newer than the one stored (the feed's signed time
        orders its updates, as a price's); an older one is ignored. No order rests on a
        rate: nothing to match. A currency the exchange does not hold is refused: its
        rate could serve nothing, and the rates stored are the ones decisions read."""
        assert self.rates is not None
        payload = update.payload
        if payload.currency not in self.currencies:
            raise CommandRejected(
                Reason.CURRENCY_NOT_ENABLED,
                f"{payload.currency} is not one of the currencies this exchange holds",
            )
        try:
            await self.rates.change_rate(
                payload.currency, payload.rate, as_of=update.issued_at, command_id=update.command_id
            )
        except StalePriceException:
            log.info("ignored a stale %s rate (%s)", payload.currency, update.issued_at)
            self.metrics.inc("rate_updates_stale_total")
            return
        self.faults.after_commit(Step.RATED)  # the crash test: written, not yet deleted
        self.metrics.inc("rate_updates_total")

    async def apply(self, update: UpdatePrice, *, redelivered: bool = False) -> list[ExecuteOrder]:
        """The price, then one query of the side of the book its move reaches, then the
        trails it moves and the orders it triggers. Every price the feed observed after a
        trailing stop was placed is a candidate peak of it, even one that arrives after a
        newer price (the queue is unordered, a redelivery comes late): the moves only ever
        improve a stop, so they run whatever the price write says."""
        asset_id, price = update.payload.asset_id, update.payload.price
        try:
            # The feed's signed time orders its updates (admission refuses one dated beyond
            # the clock skew). Not clamped to this clock: a replayed copy must meet the
            # same time it was first applied at, and be refused as not newer.
            change = await self.assets.change_price(
                asset_id, price, as_of=update.issued_at, command_id=update.command_id
            )
        except StalePriceException as stale:
            log.info("ignored a stale price of %s (%s)", asset_id, update.issued_at)
            self.metrics.inc("price_updates_stale_total")
            current: Asset | None = stale.details.get("current")
            if current is None:
                return []
            # A late peak may still move trails (on its side of the price that stands),
            # and move a stop past the market: matched at that price, as a rematch would,
            # without waiting for one. Only the stops this update moved can be such: every
            # other order was matched at that price by the update that set it.
            found = await self._reached(asset_id, price, current.price, redelivered)
            trailed = await self._move_trails(update, found, redelivered)
            past = [order for order in trailed if triggered(order, current.price)]
            if redelivered:
                past = _once(past + await self._due_at(asset_id, current.price))
            return await self._execute(past, update.command_id)
        except OrderProcessorError as exc:
            if exc.code is Reason.ASSET_NOT_FOUND:
                raise CommandRejected(Reason.UNKNOWN_ASSET, exc.message) from exc
            raise
        self.metrics.inc("price_updates_total")
        again = redelivered or change.replayed
        found = await self._reached(asset_id, price, change.before.price, again)
        await self._move_trails(update, found, again)
        due = [order for order in found if triggered(order, price)]
        return await self._execute(due, update.command_id)

    async def _reached(
        self, asset_id: str, price: Decimal, before: Decimal, again: bool
    ) -> list[Order]:
        """What the move from `before` to `price` reaches: one side of the book, the one it
        moves towards (nothing when it does not move). The other side holds nothing new:
        what a rise reaches on the fall side (a limit buy at or above it, a trailing buy's
        best above it) a lower price reached before, and the update that set that price
        found it (or the index hid it from that update: the rematch's case); an order
        placed since is filled at once, it read a price that triggers it. Both sides when
        the update is applied again (a redelivery): the move it made first is unknown."""
        if again:
            return await self._both_sides(asset_id, price)
        move = price_move(before, price)
        return [] if move is None else await self.orders.reached(asset_id, price, move)

    async def _both_sides(self, asset_id: str, price: Decimal) -> list[Order]:
        found: list[Order] = []
        for move in PriceMove:
            found += await self.orders.reached(asset_id, price, move)
        return found

    async def _due_at(self, asset_id: str, price: Decimal) -> list[Order]:
        """What the price that stands triggers, both sides of the book: a redelivered
        update may have written its price and failed before matching it (a throttled
        query: Retry); the newer update that then found the price unmoved, or moved from
        it the other way, did not look at what that price triggers."""
        return [o for o in await self._both_sides(asset_id, price) if triggered(o, price)]

    async def _execute(self, orders: list[Order], cause: str) -> list[ExecuteOrder]:
        commands = self._executions(orders, cause)
        self.faults.after_commit(Step.MATCHED)  # the crash test: after the query, before sending
        await self._send(commands)
        self.metrics.inc("orders_triggered_total", len(commands), cause="update")
        return commands

    async def _move_trails(
        self, update: UpdatePrice, found: list[Order], again: bool
    ) -> list[Order]:
        """Each move is a state of its own (QUEUED, its sequence up by one): announced
        after it is written. An update applied again (its publish failed, its matcher
        crashed) announces again the trails standing at its price, with the events' same
        ids: the latest state of an order is never left unannounced."""
        price = update.payload.price
        trailed = await move_trails(self.orders, found, price, update.issued_at)
        self.faults.after_commit(Step.TRAILED)  # the crash test: trails moved, nothing announced
        self.metrics.inc("trailing_stops_moved_total", len(trailed))
        if again:
            moved = {order.order_id for order in trailed}
            trailed += [
                order
                for order in found
                if order.order_type.is_trailing
                and order.best_price == price
                and order.order_id not in moved
            ]
        await self._announce_trails(trailed)
        return trailed

    async def _announce_trails(self, trailed: list[Order]) -> None:
        if trailed:
            await self.publisher.publish([order_event(order) for order in trailed])

    async def rematch(self, now: datetime) -> list[ExecuteOrder]:
        """Defence in depth for a lost ExecuteOrder (its short-lived token expired in a
        backlog, a purged queue) and for what an index hid from an update: every QUEUED
        order that the inventory's current price triggers is sent an ExecuteOrder again,
        and every trailing stop it improves on follows it (both sides of the book, one
        query each). Execution re-checks everything under the user's lock, so a repeat
        is harmless; ids derive from the order and the minute."""
        commands: list[ExecuteOrder] = []
        async for asset in self.assets.every_asset(active_only=True):
            found = await self._both_sides(asset.asset_id, asset.price)
            moved = await move_trails(self.orders, found, asset.price, asset.price_as_of)
            self.metrics.inc("trailing_stops_moved_total", len(moved))
            await self._announce_trails(moved)
            due = [order for order in found if triggered(order, asset.price)]
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


def _once(orders: list[Order]) -> list[Order]:
    """Each order once."""
    return list({order.order_id: order for order in orders}.values())
