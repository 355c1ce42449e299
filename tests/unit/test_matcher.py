"""The limit matcher over in-memory ports (the book, the inventory, the command sink, the
events), as the saga is tested: it decides the trail moves, the store only applies them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from order_processor.domain.assets import Asset
from order_processor.domain.commands import ExecuteOrder, ServiceName, UpdatePrice
from order_processor.domain.orders import Order, OrderType
from order_processor.domain.triggers import PriceMove
from order_processor.exceptions import OrderChangedException, ServiceUnavailableException
from order_processor.handlers.admission import Admission
from order_processor.handlers.prices import PriceMatcher
from order_processor.messaging.consumer import Message
from order_processor.messaging.producer import CommandFactory, signed_by
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager
from tests.builders import a_resting_order, a_trailing_stop
from tests.unit.fakes import MemoryBook, MemoryCommands, MemoryEvents, MemoryInventory

SECRET = "matcher-secret-" + "m" * 32
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
T = OrderType


def waiting(kind: OrderType, placed: datetime = T0, **fields: Any) -> Order:
    """A QUEUED order of BTC as the order worker leaves it."""
    return a_resting_order(kind, at=placed, **fields)


def trailing_sell(best: str, trail: str = "10", since: datetime = T0) -> Order:
    return a_trailing_stop(best=best, trail=trail, at=T0).evolve(trail_since=since)


class World:
    def __init__(
        self, *orders: Order, price: str = "100", book: type[MemoryBook] = MemoryBook
    ) -> None:
        self.tokens = TokenManager(SECRET, clock=lambda: T0 + timedelta(seconds=30))
        self.book = book(clock=lambda: T0 + timedelta(seconds=30))
        self.book.place(*orders)
        self.inventory = MemoryInventory(clock=lambda: T0 + timedelta(seconds=30))
        self.inventory.list_assets(
            Asset(asset_id="BTC", name="Bitcoin", price=Decimal(price), price_as_of=T0)
        )
        self.commands = MemoryCommands()
        self.events = MemoryEvents()
        self.matcher = PriceMatcher(
            assets=self.inventory,
            orders=self.book,
            commands=self.commands,
            admission=Admission(self.tokens, clock=lambda: T0 + timedelta(seconds=30)),
            publisher=self.events,
            audit=AuditLogger(),
        )

    def update(self, price: str, seconds: float, asset_id: str = "BTC") -> UpdatePrice:
        update = CommandFactory(self.tokens).update_price(asset_id, price)
        observed = update.model_copy(update={"issued_at": T0 + timedelta(seconds=seconds)})
        return signed_by(self.tokens, ServiceName.PRICE_FEED, observed)

    async def deliver(self, update: UpdatePrice, receive_count: int = 1) -> None:
        message = Message("m-" + update.command_id, "receipt", update.body(), receive_count)
        await self.matcher.handle_group(message.message_id, [message])

    def executed(self) -> list[str]:
        return [c.payload.order_id for c in self.commands.sent if isinstance(c, ExecuteOrder)]


async def test_a_rising_price_moves_a_trailing_sell_and_announces_the_move() -> None:
    order = trailing_sell("100")
    world = World(order)

    await world.matcher.apply(world.update("130", 1))

    stored = world.book.orders[order.order_id]
    assert (stored.best_price, stored.stop_price) == (Decimal("130"), Decimal("120"))
    assert stored.sequence == order.sequence + 1
    assert world.events.of(order.order_id) == [("order.queued", order.sequence + 1)]


async def test_a_price_observed_before_a_trailing_stop_started_is_no_peak_of_it() -> None:
    order = trailing_sell("100", since=T0 + timedelta(seconds=5))
    world = World(order)

    await world.matcher.apply(world.update("130", 1))

    assert world.book.orders[order.order_id].best_price == Decimal("100")
    assert world.events.published == []


async def test_a_lower_price_never_moves_a_trailing_sell_back() -> None:
    order = trailing_sell("130")
    world = World(order)

    await world.matcher.apply(world.update("125", 1))

    assert world.book.orders[order.order_id].best_price == Decimal("130")
    assert world.events.published == []


class AnswerLost(MemoryBook):
    """The move is written, its answer lost: the retry meets its own condition, refused."""

    async def move_trail(self, order: Order, best: Decimal, stop: Decimal) -> Order:
        moved = await super().move_trail(order, best, stop)
        raise OrderChangedException("refused by its own move", current=moved)


async def test_a_move_whose_answer_was_lost_is_announced_as_it_stands() -> None:
    order = trailing_sell("100")
    world = World(order, book=AnswerLost)

    await world.matcher.apply(world.update("130", 1))

    assert world.events.of(order.order_id) == [("order.queued", order.sequence + 1)]


class MovedFurther(MemoryBook):
    """Another matcher moved the trail further between the query and this move."""

    async def move_trail(self, order: Order, best: Decimal, stop: Decimal) -> Order:
        further = order.evolve(best_price=best + 5, sequence=order.sequence + 1)
        self.orders[order.order_id] = further
        return await super().move_trail(order, best, stop)


async def test_a_trail_moved_further_meanwhile_is_neither_moved_back_nor_announced() -> None:
    order = trailing_sell("100")
    world = World(order, book=MovedFurther)

    await world.matcher.apply(world.update("130", 1))

    assert world.book.orders[order.order_id].best_price == Decimal("135")
    assert world.events.published == []


async def test_a_redelivered_update_announces_again_the_trails_standing_at_its_price() -> None:
    order = trailing_sell("100")
    world = World(order)
    update = world.update("130", 1)
    await world.deliver(update)

    await world.deliver(update, receive_count=2)

    moved = ("order.queued", order.sequence + 1)
    assert world.events.of(order.order_id) == [moved, moved]
    assert world.book.orders[order.order_id].sequence == order.sequence + 1


async def test_a_triggered_limit_buy_is_sent_the_same_execute_order_on_redelivery() -> None:
    buy = waiting(T.LIMIT_BUY, limit_price="95")
    world = World(buy)
    update = world.update("90", 1)

    first = await world.matcher.apply(update)
    again = await world.matcher.apply(update)

    assert [c.payload.order_id for c in first] == [buy.order_id]
    assert [c.command_id for c in again] == [c.command_id for c in first]
    assert world.executed() == [buy.order_id, buy.order_id]


async def test_a_stale_price_sends_nothing_the_newer_price_already_matched() -> None:
    sell = waiting(T.LIMIT_SELL, limit_price="110")
    world = World(sell)
    await world.matcher.apply(world.update("120", 2))  # the newer price, matched

    late = await world.matcher.apply(world.update("90", 1))

    assert world.inventory.assets["BTC"].price == Decimal("120")
    assert late == []
    assert world.executed() == [sell.order_id]  # once, by the newer price


async def test_a_late_peak_that_moves_a_stop_past_the_standing_price_is_executed_at_once() -> None:
    stop = trailing_sell("100")  # stop 90, following every price observed after T0
    world = World(stop)
    await world.matcher.apply(world.update("95", 2))  # stands: above the stop

    late = await world.matcher.apply(world.update("130", 1))  # the peak, observed before

    assert world.inventory.assets["BTC"].price == Decimal("95")
    assert world.book.orders[stop.order_id].stop_price == Decimal("120")
    assert [c.payload.order_id for c in late] == [stop.order_id]
    assert world.executed() == [stop.order_id]


async def test_a_price_of_an_unknown_asset_is_rejected_and_moves_nothing() -> None:
    world = World(trailing_sell("100"))

    await world.deliver(world.update("130", 1, asset_id="ETH"))

    assert [(e.event_type.value, e.data["reason"]) for e in world.events.published] == [
        ("command.rejected", "UNKNOWN_ASSET")
    ]
    assert world.commands.sent == []


async def test_a_rematch_sends_every_order_the_standing_price_triggers() -> None:
    buy, far = waiting(T.LIMIT_BUY, limit_price="100"), waiting(T.LIMIT_BUY, limit_price="50")
    world = World(buy, far, price="100")

    sent = await world.matcher.rematch(T0 + timedelta(minutes=1))

    assert [c.payload.order_id for c in sent] == [buy.order_id]
    assert world.executed() == [buy.order_id]


async def test_a_price_update_asks_the_book_once_for_the_side_it_moves_towards() -> None:
    """The idle cost (issue 23): one query, whatever the book holds; none when the price
    does not move."""
    world = World(price="100")

    await world.matcher.apply(world.update("90", 1))
    fall = world.book.queries
    await world.matcher.apply(world.update("95", 2))
    rise = world.book.queries - fall
    await world.matcher.apply(world.update("95", 3))

    assert (fall, rise, world.book.queries) == (1, 1, 2)
    assert world.inventory.assets["BTC"].price == Decimal("95")


async def test_a_fall_fills_what_it_triggers_and_moves_trailing_buys_in_one_query() -> None:
    buy = waiting(T.LIMIT_BUY, limit_price="95")
    stop = waiting(T.STOP_SELL, stop_price="92")
    trail = a_trailing_stop(T.TRAILING_STOP_BUY, best="100", trail="10", at=T0)
    sell = waiting(T.LIMIT_SELL, limit_price="80")  # a rise's side: filled when it read 100
    world = World(buy, stop, trail, sell, price="100")

    await world.matcher.apply(world.update("90", 1))

    moved = world.book.orders[trail.order_id]
    assert sorted(world.executed()) == sorted([buy.order_id, stop.order_id])
    assert (moved.best_price, moved.stop_price) == (Decimal("90"), Decimal("100"))
    assert world.book.queries == 1


async def test_a_redelivered_update_asks_both_sides_of_the_book() -> None:
    """Its first delivery wrote the price (the move it made is gone): whatever that move
    reached is found again."""
    buy = waiting(T.LIMIT_BUY, limit_price="95")
    world = World(buy, price="100")
    update = world.update("90", 1)
    await world.matcher.apply(update)

    await world.deliver(update, receive_count=2)

    assert world.executed() == [buy.order_id, buy.order_id]
    assert world.book.queries == 1 + 2


class ThrottledOnce(MemoryBook):
    """The first query meets a transient failure (a throttled query, a 5xx)."""

    async def reached(self, asset_id: str, price: Decimal, move: PriceMove) -> list[Order]:
        if not self.queries:
            self.queries += 1
            raise ServiceUnavailableException("DynamoDB throttled the FallTriggers query")
        return await super().reached(asset_id, price, move)


async def test_a_price_written_then_left_unmatched_is_matched_by_its_redelivery() -> None:
    """U1 writes 90 and its query is throttled (Retry); U2, observed later at 90 too,
    finds the price unmoved and queries nothing; U1's redelivery is stale, and still
    sends the limit buy 90 triggers."""
    buy = waiting(T.LIMIT_BUY, limit_price="95")
    world = World(buy, price="100", book=ThrottledOnce)
    first = world.update("90", 1)
    await world.deliver(first)
    await world.deliver(world.update("90", 2))
    assert world.executed() == []

    await world.deliver(first, receive_count=2)

    assert world.executed() == [buy.order_id]
