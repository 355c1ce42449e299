"""The read model's contract (`readmodel.ports.ReadModel`), run by the in-memory model
(tests/unit/test_contracts.py) and by Redis (tests/integration/test_read_model.py): late
and duplicate events never overwrite newer states, a racing fill is refused, the streams
resume or report a gap, every entry expires, and a model that cannot answer says so at
once. Each test's users and orders are its own (a shared Redis holds other tests' keys)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from order_processor.domain.events import Event, EventType, order_event, rejection_event
from order_processor.domain.orders import Order, OrderStatus
from order_processor.exceptions import Reason
from order_processor.readmodel.ports import Document, ReadModel, ReadModelUnavailable
from tests.builders import an_order

STATUSES = [
    OrderStatus.QUEUED,
    OrderStatus.PROCESSING,
    OrderStatus.COMPLETED,
]


class ReadModelWorld(Protocol):
    def model(
        self,
        *,
        ttl_seconds: float = 60,
        price_ttl_seconds: float = 2,
        stream_length: int = 1000,
    ) -> ReadModel:
        """A model of its own (nothing another model of the world wrote)."""
        ...

    def interruptible(self) -> ReadModel:
        """A model whose store `stop()` takes away and `start()` brings back (empty)."""
        ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


def a_trader() -> str:
    return f"trader_{uuid.uuid4().hex[:10]}"


def states_of(order: Order, count: int) -> list[Order]:
    """The order's states as the order worker moves it: sequence 1, 2, ... `count`."""
    return [order.evolve(status=STATUSES[min(n, 2)], sequence=n + 1) for n in range(count)]


def deposit(username: str) -> Event:
    return Event(
        event_id=f"funds:{username}:{uuid.uuid4().hex}",
        event_type=EventType.BALANCE_DEPOSITED,
        username=username,
        sequence=1,
        data={"amount": "10.00", "currency": "USD"},
    )


def rejected(username: str, order_id: str, reason: Reason = Reason.INSUFFICIENT_BALANCE) -> Event:
    return rejection_event(
        reason=reason,
        message="not enough USD",
        message_id=uuid.uuid4().hex,
        username=username,
        command_id=uuid.uuid4().hex,
        order_id=order_id,
    )


class ReadModelContract:
    @pytest.fixture
    def world(self) -> ReadModelWorld:
        raise NotImplementedError

    @settings(
        max_examples=25,
        deadline=None,
        # function-scoped: each example's order and user are new, the world is shared;
        # differing executors: each model's subclass runs this one body, by design
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        arrivals=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=10),
        shuffle=st.randoms(use_true_random=False),
    )
    async def test_events_in_any_order_and_any_number_of_copies_leave_the_newest_state(
        self, world: ReadModelWorld, arrivals: list[int], shuffle: random.Random
    ) -> None:
        model = world.model()
        trader = a_trader()
        events = [order_event(state) for state in states_of(an_order(username=trader), 4)]
        delivered = [events[n] for n in arrivals] + events  # every event at least once
        shuffle.shuffle(delivered)
        applied = [await model.apply(event) for event in delivered]

        kept = await model.order(events[0].order_id or "")
        assert kept is not None
        assert kept.sequence == 4
        assert kept.status is OrderStatus.COMPLETED
        streamed = (await model.events_after(trader, None, 100)).events
        assert sorted(s.event.event_id for s in streamed) == sorted(e.event_id for e in events)
        assert applied.count(True) == 4

    async def test_a_copy_of_an_event_changes_nothing(self, world: ReadModelWorld) -> None:
        model = world.model()
        trader = a_trader()
        event = order_event(an_order(username=trader).evolve(sequence=1))
        assert await model.apply(event) is True
        generation = await model.generation(trader)
        assert await model.apply(event) is False
        assert await model.generation(trader) == generation
        assert len((await model.events_after(trader, None, 10)).events) == 1

    async def test_an_event_of_another_user_never_takes_over_an_order(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model()
        owner, intruder = a_trader(), a_trader()
        first, _ = states_of(an_order(username=owner), 2)
        await model.apply(order_event(first))
        taken = first.evolve(username=intruder, sequence=50, status=OrderStatus.CANCELLED)
        await model.apply(order_event(taken))

        assert await model.order(first.order_id) == first

    async def test_a_fill_keeps_an_order_only_when_it_is_newer(self, world: ReadModelWorld) -> None:
        model = world.model()
        first, second, third = states_of(an_order(username=a_trader()), 3)
        assert await model.fill_order(second) is True
        assert await model.fill_order(first) is False
        assert await model.fill_order(second) is False
        await model.apply(order_event(third))
        assert await model.fill_order(second) is False
        kept = await model.order(first.order_id)
        assert kept == third

    async def test_an_unknown_order_is_not_there(self, world: ReadModelWorld) -> None:
        assert await world.model().order(uuid.uuid4().hex) is None

    async def test_a_placeholder_is_replaced_by_its_first_event(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model()
        placeholder = an_order(username=a_trader())
        assert await model.fill_order(placeholder) is True
        accepted = placeholder.evolve(status=OrderStatus.QUEUED, sequence=1)
        await model.apply(order_event(accepted))
        assert await model.order(placeholder.order_id) == accepted

    async def test_a_placeholder_whose_command_is_rejected_fails_with_the_reason(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model()
        trader = a_trader()
        placeholder = an_order(username=trader)
        await model.fill_order(placeholder)
        assert await model.apply(rejected(trader, placeholder.order_id)) is True
        kept = await model.order(placeholder.order_id)
        assert kept is not None
        assert kept.status is OrderStatus.FAILED
        assert kept.failure_reason == Reason.INSUFFICIENT_BALANCE
        assert kept.quantity == placeholder.quantity

    async def test_a_rejection_leaves_another_users_order_and_a_started_one_alone(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model()
        trader = a_trader()
        placeholder = an_order(username=trader)
        started = an_order(username=trader).evolve(status=OrderStatus.QUEUED, sequence=1)
        await model.fill_order(placeholder)
        await model.fill_order(started)
        await model.apply(rejected(a_trader(), placeholder.order_id))
        await model.apply(rejected(trader, started.order_id))
        assert await model.order(placeholder.order_id) == placeholder
        assert await model.order(started.order_id) == started

    async def test_every_event_of_a_user_drops_the_documents_and_moves_the_generation(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model()
        trader = a_trader()
        generation = await model.generation(trader)
        assert await model.fill_document(trader, Document.BALANCES, '{"USD": "5"}', generation)
        assert await model.fill_document(trader, Document.PORTFOLIO, "[]", generation)
        assert await model.document(trader, Document.BALANCES) == '{"USD": "5"}'
        await model.apply(deposit(trader))
        assert await model.generation(trader) > generation
        assert await model.document(trader, Document.BALANCES) is None
        assert await model.document(trader, Document.PORTFOLIO) is None

    async def test_a_fill_read_before_an_event_is_refused(self, world: ReadModelWorld) -> None:
        model = world.model()
        trader = a_trader()
        read_at = await model.generation(trader)  # the gateway's DynamoDB read begins
        await model.apply(deposit(trader))  # an event lands meanwhile
        assert not await model.fill_document(trader, Document.BALANCES, '{"USD": "0"}', read_at)
        assert await model.document(trader, Document.BALANCES) is None
        now = await model.generation(trader)
        assert await model.fill_document(trader, Document.BALANCES, '{"USD": "10"}', now)
        assert await model.document(trader, Document.BALANCES) == '{"USD": "10"}'

    async def test_the_prices_are_kept_a_few_seconds(self, world: ReadModelWorld) -> None:
        model = world.model(price_ttl_seconds=0.3)
        await model.fill_prices('{"BTC": "100"}')
        assert await model.prices() == '{"BTC": "100"}'
        await asyncio.sleep(0.5)
        assert await model.prices() is None

    async def test_a_stream_resumes_after_a_position_in_arrival_order(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model()
        trader = a_trader()
        assert await model.tail(trader) == "0-0"
        events = [deposit(trader) for _ in range(5)]
        for event in events:
            await model.apply(event)
        everything = await model.events_after(trader, None, 100)
        assert [s.event for s in everything.events] == events
        assert not everything.gap
        assert await model.tail(trader) == everything.events[-1].position
        later = await model.events_after(trader, everything.events[1].position, 2)
        assert [s.event for s in later.events] == events[2:4]
        assert not later.gap
        for start in ("0-0", "0", "00-0"):  # the start, however a client spells it
            from_start = await model.events_after(trader, start, 100)
            assert [s.event for s in from_start.events] == events
            assert not from_start.gap
        at_tail = await model.events_after(trader, await model.tail(trader), 100)
        assert at_tail.events == []
        assert not at_tail.gap

    async def test_a_position_older_than_the_oldest_kept_is_a_gap(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model(stream_length=3)
        trader = a_trader()
        events = [deposit(trader) for _ in range(6)]
        positions = []
        for event in events:
            await model.apply(event)
            positions.append(await model.tail(trader))
        kept = await model.events_after(trader, None, 100)
        assert [s.event for s in kept.events] == events[3:]
        assert not kept.gap
        missed = await model.events_after(trader, positions[0], 100)
        assert missed.gap
        assert [s.event for s in missed.events] == events[3:]
        assert (await model.events_after(trader, "0-0", 100)).gap
        assert not (await model.events_after(trader, positions[2], 100)).gap

    async def test_a_position_it_cannot_read_is_a_gap(self, world: ReadModelWorld) -> None:
        model = world.model()
        trader = a_trader()
        await model.apply(deposit(trader))
        unreadable = await model.events_after(trader, "yesterday", 100)
        assert unreadable.gap
        assert len(unreadable.events) == 1

    async def test_a_wait_answers_at_once_with_what_is_already_there(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model()
        ann, bob = a_trader(), a_trader()
        event = deposit(ann)
        await model.apply(event)
        started = time.monotonic()
        found = await model.wait_events({ann: "0-0", bob: "0-0"}, 5)
        assert time.monotonic() - started < 1
        assert {user: [s.event for s in events] for user, events in found.items()} == {ann: [event]}

    async def test_a_wait_wakes_for_the_first_event_of_any_user_it_follows(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model()
        users = [a_trader() for _ in range(3)]
        positions = {user: await model.tail(user) for user in users}
        event = deposit(users[2])

        async def later() -> None:
            await asyncio.sleep(0.2)
            await model.apply(event)

        started = time.monotonic()
        found, _ = await asyncio.gather(model.wait_events(positions, 5), later())
        assert time.monotonic() - started < 2
        assert [s.event for s in found[users[2]]] == [event]
        assert set(found) == {users[2]}

    async def test_a_wait_with_nothing_new_ends_after_its_time(self, world: ReadModelWorld) -> None:
        model = world.model()
        trader = a_trader()
        await model.apply(deposit(trader))
        started = time.monotonic()
        found = await model.wait_events({trader: await model.tail(trader)}, 0.5)
        assert found == {}
        assert 0.4 < time.monotonic() - started < 2

    async def test_every_entry_expires_after_the_ttl(self, world: ReadModelWorld) -> None:
        model = world.model(ttl_seconds=0.5)
        trader = a_trader()
        placeholder = an_order(username=trader)
        event = order_event(placeholder.evolve(sequence=1))
        await model.apply(event)
        generation = await model.generation(trader)
        await model.fill_document(trader, Document.BALANCES, "{}", generation)
        position = await model.tail(trader)
        await asyncio.sleep(0.8)
        assert await model.order(placeholder.order_id) is None
        assert await model.generation(trader) == 0
        assert await model.document(trader, Document.BALANCES) is None
        assert await model.tail(trader) == "0-0"
        assert (await model.events_after(trader, position, 10)).gap
        assert await model.apply(event) is True  # out of the duplicates' window: kept again

    async def test_a_stream_made_anew_does_not_resume_a_position_from_the_old_one(
        self, world: ReadModelWorld
    ) -> None:
        model = world.model(ttl_seconds=0.3)
        trader = a_trader()
        await model.apply(deposit(trader))
        old = await model.tail(trader)
        await asyncio.sleep(0.5)
        await model.apply(deposit(trader))
        assert (await model.events_after(trader, old, 10)).gap
        fresh = await model.events_after(trader, "0-0", 10)
        assert not fresh.gap
        assert len(fresh.events) == 1

    async def test_a_model_that_cannot_answer_says_so_at_once(self, world: ReadModelWorld) -> None:
        model = world.interruptible()
        trader = a_trader()
        await model.apply(deposit(trader))
        world.stop()
        calls: list[Callable[[], Awaitable[object]]] = [
            model.ping,
            lambda: model.apply(deposit(trader)),
            lambda: model.order("o1"),
            lambda: model.generation(trader),
            lambda: model.events_after(trader, None, 10),
            lambda: model.wait_events({trader: "0-0"}, 5),
            lambda: model.fill_prices("{}"),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(ReadModelUnavailable):
                await call()
            assert time.monotonic() - started < 3
        world.start()
        await model.ping()
        assert await model.apply(deposit(trader)) is True
