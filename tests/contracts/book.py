"""The matcher's and the sweeper's ports: `OrderBook` finds the QUEUED orders a price
concerns (and the expired and stalled ones), and moves a trail only on its condition;
`Inventory` writes a price only when it is newer. The tables the DynamoDB adapters query
are shared by a module's tests: every answer is read for the test's own orders only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import pytest

from order_processor.domain.orders import Order, OrderStatus, OrderType
from order_processor.domain.ports import Inventory, OrderBook
from order_processor.domain.triggers import PriceMove
from order_processor.exceptions import (
    AssetNotFoundException,
    OrderChangedException,
    StalePriceException,
)
from tests.builders import a_resting_order, a_trailing_stop

T = OrderType
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class BookWorld(Protocol):
    @property
    def book(self) -> OrderBook: ...

    async def store(self, *orders: Order) -> None:
        """The orders as the order worker leaves them."""
        ...


class InventoryWorld(Protocol):
    @property
    def inventory(self) -> Inventory: ...

    async def list_asset(self, asset_id: str, price: str) -> None:
        """A new asset, its price observed now."""
        ...


def new_asset() -> str:
    return f"B{uuid.uuid4().hex[:8].upper()}"


def resting(
    kind: OrderType, asset_id: str, status: OrderStatus = OrderStatus.QUEUED, **fields: Any
) -> Order:
    changes = {k: fields.pop(k) for k in ("updated_at", "expires_at") if k in fields}
    username = f"user_{uuid.uuid4().hex[:12]}"
    order = a_resting_order(
        kind, status=status, username=username, asset_id=asset_id, at=T0, **fields
    )
    return order.evolve(**changes) if changes else order


def trailing(
    kind: OrderType,
    asset_id: str,
    best: str,
    status: OrderStatus = OrderStatus.QUEUED,
    trail: str = "10",
) -> Order:
    username = f"user_{uuid.uuid4().hex[:12]}"
    return a_trailing_stop(
        kind, best=best, trail=trail, status=status, username=username, asset_id=asset_id, at=T0
    )


def ids(orders: list[Order], *mine: Order) -> set[str]:
    wanted = {order.order_id for order in mine}
    return {order.order_id for order in orders} & wanted


def assert_found(found: list[Order], reached: list[Order], beyond: list[Order]) -> None:
    """Among the test's own orders, `found` is exactly `reached`."""
    assert ids(found, *reached, *beyond) == {order.order_id for order in reached}


class OrderBookContract:
    @pytest.fixture
    def world(self) -> BookWorld:
        raise NotImplementedError

    async def test_a_fall_reaches_what_it_triggers_or_moves_at_or_above_its_price(
        self, world: BookWorld
    ) -> None:
        asset = new_asset()
        reached = [
            resting(T.LIMIT_BUY, asset, limit_price="100"),
            resting(T.LIMIT_BUY, asset, limit_price="150"),
            resting(T.STOP_SELL, asset, stop_price="100"),
            resting(T.TAKE_PROFIT_BUY, asset, stop_price="101"),
            trailing(T.TRAILING_STOP_SELL, asset, "110", trail="10"),  # its stop, 100
            trailing(T.TRAILING_STOP_BUY, asset, "100"),  # its best: not improved, reached
            trailing(T.TRAILING_STOP_BUY, asset, "120"),
        ]
        beyond = [
            resting(T.LIMIT_BUY, asset, limit_price="99.99"),
            resting(T.STOP_SELL, asset, stop_price="99.99"),
            resting(T.LIMIT_SELL, asset, limit_price="50"),  # a rise's side
            resting(T.STOP_BUY, asset, stop_price="150"),
            resting(T.TAKE_PROFIT_SELL, asset, stop_price="150"),
            trailing(T.TRAILING_STOP_SELL, asset, "105", trail="10"),  # stop 95
            trailing(T.TRAILING_STOP_BUY, asset, "99.99"),
            resting(T.LIMIT_BUY, asset, OrderStatus.CANCELLED, limit_price="200"),
            resting(T.LIMIT_BUY, new_asset(), limit_price="200"),
        ]
        await world.store(*reached, *beyond)

        found = await world.book.reached(asset.lower(), Decimal("100"), PriceMove.FALL)

        assert_found(found, reached, beyond)

    async def test_a_rise_reaches_what_it_triggers_or_moves_at_or_below_its_price(
        self, world: BookWorld
    ) -> None:
        asset = new_asset()
        reached = [
            resting(T.LIMIT_SELL, asset, limit_price="100"),
            resting(T.LIMIT_SELL, asset, limit_price="50"),
            resting(T.STOP_BUY, asset, stop_price="100"),
            resting(T.TAKE_PROFIT_SELL, asset, stop_price="99"),
            trailing(T.TRAILING_STOP_BUY, asset, "90", trail="10"),  # its stop, 100
            trailing(T.TRAILING_STOP_SELL, asset, "100"),  # its best
            trailing(T.TRAILING_STOP_SELL, asset, "80"),
        ]
        beyond = [
            resting(T.LIMIT_SELL, asset, limit_price="100.01"),
            resting(T.STOP_BUY, asset, stop_price="100.01"),
            resting(T.LIMIT_BUY, asset, limit_price="150"),  # a fall's side
            resting(T.STOP_SELL, asset, stop_price="50"),
            resting(T.TAKE_PROFIT_BUY, asset, stop_price="50"),
            trailing(T.TRAILING_STOP_BUY, asset, "95", trail="10"),  # stop 105
            trailing(T.TRAILING_STOP_SELL, asset, "100.01"),
            resting(T.LIMIT_SELL, asset, OrderStatus.FAILED, limit_price="1"),
        ]
        await world.store(*reached, *beyond)

        found = await world.book.reached(asset, Decimal("100"), PriceMove.RISE)

        assert_found(found, reached, beyond)

    async def test_a_moved_trail_is_reached_at_its_new_best_and_stop(
        self, world: BookWorld
    ) -> None:
        asset = new_asset()
        order = trailing(T.TRAILING_STOP_SELL, asset, "100")
        await world.store(order)

        await world.book.move_trail(order, Decimal("130"), Decimal("120"))

        def reached(orders: list[Order]) -> bool:
            return order.order_id in ids(orders, order)

        assert reached(await world.book.reached(asset, Decimal("120"), PriceMove.FALL))
        assert not reached(await world.book.reached(asset, Decimal("120.01"), PriceMove.FALL))
        assert reached(await world.book.reached(asset, Decimal("130"), PriceMove.RISE))
        assert not reached(await world.book.reached(asset, Decimal("129.99"), PriceMove.RISE))

    async def test_a_trail_moved_is_its_own_state_of_the_order(self, world: BookWorld) -> None:
        order = trailing(T.TRAILING_STOP_SELL, new_asset(), "100")
        await world.store(order)

        moved = await world.book.move_trail(order, Decimal("130"), Decimal("120"))

        assert (moved.best_price, moved.stop_price) == (Decimal("130"), Decimal("120"))
        assert moved.sequence == order.sequence + 1
        assert moved.model_dump(exclude={"best_price", "stop_price", "sequence", "updated_at"}) == (
            order.model_dump(exclude={"best_price", "stop_price", "sequence", "updated_at"})
        )
        standing = await world.book.reached(order.asset_id, Decimal("130"), PriceMove.RISE)
        assert [o for o in standing if o.order_id == order.order_id] == [moved]

    @pytest.mark.parametrize("stored_best", ["130", "140"])
    async def test_a_trail_move_is_refused_with_the_stored_order_unless_it_improves_it(
        self, world: BookWorld, stored_best: str
    ) -> None:
        """Moved to this very price (a lost answer's own move) or further meanwhile."""
        read = trailing(T.TRAILING_STOP_SELL, new_asset(), "100")
        await world.store(read)
        stored = await world.book.move_trail(read, Decimal(stored_best), Decimal("1"))

        with pytest.raises(OrderChangedException) as refused:
            await world.book.move_trail(read, Decimal("130"), Decimal("120"))

        assert refused.value.details["current"] == stored

    async def test_a_move_of_a_closed_or_absent_trail_is_refused(self, world: BookWorld) -> None:
        closed = trailing(T.TRAILING_STOP_BUY, new_asset(), "100", OrderStatus.CANCELLED)
        absent = trailing(T.TRAILING_STOP_BUY, new_asset(), "100")
        await world.store(closed)

        with pytest.raises(OrderChangedException) as refused_closed:
            await world.book.move_trail(closed, Decimal("90"), Decimal("100"))
        with pytest.raises(OrderChangedException) as refused_absent:
            await world.book.move_trail(absent, Decimal("90"), Decimal("100"))

        assert refused_closed.value.details["current"] == closed
        assert refused_absent.value.details["current"] is None

    async def test_the_orders_due_are_the_queued_ones_whose_expiry_has_come(
        self, world: BookWorld
    ) -> None:
        asset, due_at = new_asset(), T0 - timedelta(days=400)
        due = resting(T.LIMIT_BUY, asset, limit_price="1", expires_at=due_at)
        later = resting(T.LIMIT_BUY, asset, limit_price="1", expires_at=due_at + timedelta(1))
        ended = resting(T.LIMIT_BUY, asset, OrderStatus.CANCELLED, limit_price="1")
        await world.store(due, later, ended.evolve(expires_at=due_at))

        found = await world.book.due_orders(due_at)

        assert ids(found, due, later, ended) == {due.order_id}

    async def test_the_orders_stalled_are_the_ones_in_flight_unchanged_since_before(
        self, world: BookWorld
    ) -> None:
        asset, since = new_asset(), T0 - timedelta(minutes=5)
        pending = resting(T.LIMIT_BUY, asset, OrderStatus.PENDING, limit_price="1")
        processing = resting(T.MARKET_BUY, asset, OrderStatus.PROCESSING)
        recent = resting(T.MARKET_BUY, asset, OrderStatus.PROCESSING, updated_at=since)
        queued = resting(T.LIMIT_BUY, asset, limit_price="1")
        for order in (pending, processing, queued):
            await world.store(order.evolve(updated_at=since - timedelta(seconds=1)))
        await world.store(recent)

        found = await world.book.stalled_orders(since)

        assert ids(found, pending, processing, recent, queued) == {
            pending.order_id,
            processing.order_id,
        }


class InventoryContract:
    @pytest.fixture
    def world(self) -> InventoryWorld:
        raise NotImplementedError

    async def test_a_newer_price_is_written_and_an_older_one_refused_with_the_stored(
        self, world: InventoryWorld
    ) -> None:
        asset, now = new_asset(), datetime.now(UTC)
        await world.list_asset(asset, "10")
        change = await world.inventory.change_price(
            asset.lower(), Decimal("12"), as_of=now + timedelta(seconds=1), command_id="u-new"
        )

        with pytest.raises(StalePriceException) as stale:
            await world.inventory.change_price(
                asset, Decimal("11"), as_of=now - timedelta(seconds=1), command_id="u-old"
            )

        written = change.after
        assert (written.price, written.price_command_id) == (Decimal("12"), "u-new")
        assert (change.before.price, change.replayed) == (Decimal("10"), False)
        assert stale.value.details["current"] == written

    async def test_the_same_update_again_is_written_and_another_of_its_instant_refused(
        self, world: InventoryWorld
    ) -> None:
        asset, at = new_asset(), datetime.now(UTC) + timedelta(seconds=1)
        await world.list_asset(asset, "10")
        await world.inventory.change_price(asset, Decimal("12"), as_of=at, command_id="u-1")

        again = await world.inventory.change_price(asset, Decimal("12"), as_of=at, command_id="u-1")
        with pytest.raises(StalePriceException):
            await world.inventory.change_price(asset, Decimal("13"), as_of=at, command_id="u-2")

        assert (again.after.price, again.after.price_command_id) == (Decimal("12"), "u-1")
        assert again.replayed

    async def test_a_stored_price_from_beyond_the_clock_skew_holds_nothing_back(
        self, world: InventoryWorld
    ) -> None:
        asset, now = new_asset(), datetime.now(UTC)
        await world.list_asset(asset, "10")
        await world.inventory.change_price(asset, Decimal("99"), as_of=now + timedelta(hours=1))

        written = await world.inventory.change_price(asset, Decimal("12"), as_of=now)

        assert (written.before.price, written.after.price) == (Decimal("99"), Decimal("12"))

    async def test_a_price_of_an_unknown_asset_is_refused(self, world: InventoryWorld) -> None:
        with pytest.raises(AssetNotFoundException):
            await world.inventory.change_price(new_asset(), Decimal("1"), as_of=T0)

    async def test_every_asset_lists_each_one_once(self, world: InventoryWorld) -> None:
        mine = sorted(new_asset() for _ in range(3))
        for asset in mine:
            await world.list_asset(asset, "1")

        listed = [a.asset_id async for a in world.inventory.every_asset(active_only=True)]

        assert [asset for asset in listed if asset in mine] == mine
