"""The sweeper over in-memory ports: which orders it expires and resumes, and that the
ids it derives make a repeat within the minute the same command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from order_processor.domain.commands import ExpireOrder, ResumeOrder
from order_processor.domain.orders import Order, OrderStatus, OrderType
from order_processor.handlers.sweeper import ExpirySweeper
from order_processor.security.tokens import TokenManager
from tests.builders import an_order
from tests.unit.fakes import MemoryBook, MemoryCommands

SECRET = "sweeper-secret-" + "s" * 32
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def order(status: OrderStatus, *, changed: datetime = T0, expires: datetime | None = None) -> Order:
    placed = an_order(OrderType.LIMIT_BUY, limit_price="9")
    return placed.evolve(
        status=status, sequence=3, created_at=T0, updated_at=changed, expires_at=expires
    )


def sweeper(*orders: Order) -> tuple[ExpirySweeper, MemoryCommands]:
    book, commands = MemoryBook(), MemoryCommands()
    book.place(*orders)
    tokens = TokenManager(SECRET, clock=lambda: T0)
    return ExpirySweeper(book, commands, tokens, recovery_age=timedelta(minutes=5)), commands


async def test_an_order_past_its_expiry_is_sent_one_expire_order_the_same_within_a_minute() -> None:
    due = order(OrderStatus.QUEUED, expires=T0 + timedelta(hours=1))
    later = order(OrderStatus.QUEUED, expires=T0 + timedelta(hours=2))
    ended = order(OrderStatus.CANCELLED, expires=T0)
    sweep, commands = sweeper(due, later, ended)

    first = await sweep.sweep(T0 + timedelta(hours=1, seconds=5))
    again = await sweep.sweep(T0 + timedelta(hours=1, seconds=50))

    assert [c.payload.order_id for c in first] == [due.order_id]
    assert [c.command_id for c in again] == [c.command_id for c in first]
    expired = [c.payload.order_id for c in commands.sent if isinstance(c, ExpireOrder)]
    assert expired == [due.order_id] * 2 == [c.payload.order_id for c in first + again]
    assert len(commands.sent) == 2


async def test_an_order_in_flight_longer_than_the_recovery_age_is_resumed() -> None:
    stalled = order(OrderStatus.PROCESSING, changed=T0)
    recent = order(OrderStatus.PENDING, changed=T0 + timedelta(minutes=4))
    queued = order(OrderStatus.QUEUED, changed=T0)
    sweep, commands = sweeper(stalled, recent, queued)

    resumed = await sweep.recover(T0 + timedelta(minutes=6))

    assert [c.payload.order_id for c in resumed] == [stalled.order_id]
    assert [type(c) for c in commands.sent] == [ResumeOrder]


async def test_a_resumed_order_that_moved_on_is_sent_a_new_resume_order() -> None:
    stalled = order(OrderStatus.PROCESSING, changed=T0)
    sweep, _ = sweeper(stalled)
    first = await sweep.recover(T0 + timedelta(minutes=6))

    moved, _ = sweeper(stalled.evolve(sequence=stalled.sequence + 1))
    second = await moved.recover(T0 + timedelta(minutes=6))

    assert first[0].command_id != second[0].command_id
