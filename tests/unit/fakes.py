"""In-memory fakes of the ports, with the store's semantics: a ledger write is checked
whole (the fence, the order's condition, each balance's, each record's absence, the daily
total) and applied whole or not at all, refusals raised as the store raises them; the
book finds orders as the store's indexes do and moves a trail on the store's condition.
Each fake runs its port's contract suite (tests/contracts/), as its adapter does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from order_processor.domain.assets import Asset, normalise_asset_id
from order_processor.domain.base import new_id, utc_now
from order_processor.domain.commands import AnyCommand
from order_processor.domain.events import Event
from order_processor.domain.money import PRICE_PLACES, parse_decimal
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.ports import PriceChange, Snapshot
from order_processor.domain.triggers import PriceMove, reaches
from order_processor.exceptions import (
    AssetNotFoundException,
    OrderChangedException,
    StalePriceException,
)
from order_processor.saga.memory import MemoryLedger as BooksInMemory

Pair = tuple[Decimal, Decimal]  # (available, held)


@dataclass
class MemoryLedger(BooksInMemory):
    """The saga's in-memory ledger, with a seam for another writer and what a user
    would see."""

    interfere: list[str] = field(default_factory=list)  # users another writer moves next read

    async def read(
        self,
        username: str,
        *,
        order_id: str | None = None,
        asset_id: str | None = None,
        funds_id: str | None = None,
        with_user: bool = True,
        currencies: Iterable[str] = (),
    ) -> Snapshot:
        snapshot = await super().read(
            username,
            order_id=order_id,
            asset_id=asset_id,
            funds_id=funds_id,
            with_user=with_user,
            currencies=currencies,
        )
        if username in self.interfere:  # another worker writes between our read and write
            self.interfere.remove(username)
            self.fences[username] = self.fences.get(username, 0) + 1
        return snapshot

    # what a user would see

    def available(self, username: str) -> Pair:
        return self.cash[username, "USD"]

    def holding(self, username: str, asset_id: str) -> Pair:
        return self.holdings.get((username, asset_id), (Decimal(0), Decimal(0)))

    def records_of(self, order_id: str) -> list[str]:
        """The kinds of the records written for an order, sorted."""
        usd = [
            r.transaction_type.value
            for r in self.cash_records.values()
            if r.reference_id == order_id
        ]
        trades = [
            t.transaction_type.value for t in self.asset_records.values() if t.order_id == order_id
        ]
        return sorted(usd + trades)


@dataclass
class MemoryEvents:
    published: list[Event] = field(default_factory=list)

    async def publish(self, events: Sequence[Event]) -> None:
        self.published += events

    def of(self, order_id: str) -> list[tuple[str, int]]:
        return [(e.event_type.value, e.sequence) for e in self.published if e.order_id == order_id]


class MemoryFailures:
    """`CommandFailures` in memory: distinct attempts per command (the contract:
    tests/integration/store/test_failures.py)."""

    def __init__(self) -> None:
        self.attempts: dict[tuple[str, str], set[str]] = {}

    async def record(self, username: str, command_id: str, attempt: str) -> int:
        seen = self.attempts.setdefault((username, command_id), set())
        seen.add(attempt)
        return len(seen)


@dataclass
class MemoryBook:
    """`OrderBook` in memory: the QUEUED orders of an asset as the store's sparse indexes
    hold them, a trail moved on the store's condition (the contract:
    tests/contracts/book.py)."""

    orders: dict[str, Order] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    queries: int = 0  # what the matcher asked the book (one index query each)

    def place(self, *orders: Order) -> None:
        self.orders |= {order.order_id: order for order in orders}

    def _queued(self, asset_id: str) -> list[Order]:
        wanted = normalise_asset_id(asset_id)
        return [
            o
            for o in self.orders.values()
            if o.status is OrderStatus.QUEUED and o.asset_id == wanted and o.order_type.rests
        ]

    async def reached(self, asset_id: str, price: Decimal, move: PriceMove) -> list[Order]:
        self.queries += 1
        return [o for o in self._queued(asset_id) if reaches(o, price, move)]

    async def move_trail(self, order: Order, best: Decimal, stop: Decimal) -> Order:
        stored = self.orders.get(order.order_id)
        if (
            stored is None
            or stored.status is not OrderStatus.QUEUED
            or (not _worse(order, stored.best_price, best))
        ):
            raise OrderChangedException("the trail changed since it was read", current=stored)
        moved = stored.evolve(
            best_price=best, stop_price=stop, sequence=stored.sequence + 1, updated_at=self.clock()
        )
        self.orders[order.order_id] = moved
        return moved

    async def due_orders(self, now: datetime) -> list[Order]:
        return [
            o
            for o in self.orders.values()
            if o.status is OrderStatus.QUEUED and o.expires_at is not None and o.expires_at <= now
        ]

    async def stalled_orders(self, changed_before: datetime) -> list[Order]:
        in_flight = {OrderStatus.PENDING, OrderStatus.PROCESSING}
        return [
            o
            for o in self.orders.values()
            if o.status in in_flight and o.updated_at < changed_before
        ]


def _worse(order: Order, best: Decimal | None, price: Decimal) -> bool:
    """`best` is worse than `price` for the trailing stop `order` (none is no best)."""
    if best is None:
        return False
    return best > price if order.order_type.is_buy else best < price


@dataclass
class MemoryInventory:
    """`Inventory` in memory: a price written only when newer, as the store writes it (the
    contract: tests/contracts/book.py)."""

    assets: dict[str, Asset] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    clock_skew: timedelta = timedelta(seconds=30)

    def list_assets(self, *assets: Asset) -> None:
        self.assets |= {asset.asset_id: asset for asset in assets}

    async def change_price(
        self,
        asset_id: str,
        price: Decimal,
        *,
        as_of: datetime | None = None,
        command_id: str | None = None,
    ) -> PriceChange:
        checked = parse_decimal(price, field="price", places=PRICE_PLACES)
        key = normalise_asset_id(asset_id)
        stored = self.assets.get(key)
        if stored is None:
            raise AssetNotFoundException(f"asset {key} not found")
        observed = self.clock() if as_of is None else as_of
        command_id = new_id() if command_id is None else command_id
        seen = stored.price_as_of
        newer = (
            seen is None
            or seen < observed
            or (seen == observed and stored.price_command_id == command_id)
            or seen > self.clock() + 2 * self.clock_skew
        )
        if not newer:
            raise StalePriceException(f"a newer price of {key} is stored", current=stored)
        changes = {"price": checked, "price_as_of": observed, "price_command_id": command_id}
        updated = Asset.model_validate(
            {**stored.model_dump(), **changes, "updated_at": self.clock()}
        )
        self.assets[key] = updated
        return PriceChange(before=stored, after=updated)

    async def every_asset(self, *, active_only: bool = False) -> AsyncIterator[Asset]:
        for key in sorted(self.assets):
            if self.assets[key].is_active or not active_only:
                yield self.assets[key]


@dataclass
class MemoryCommands:
    """`CommandSink` in memory: what was sent, in order."""

    fifo: bool = True
    sent: list[AnyCommand] = field(default_factory=list)

    async def send_batch(
        self, commands: Sequence[AnyCommand], *, in_flight: int = 1, independent: bool = False
    ) -> list[str]:
        self.sent += commands
        return [c.command_id for c in commands]
