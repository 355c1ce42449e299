"""The group commit: a batch of one user's commands decided in order, in memory, from one
read, and written in one transaction.

    read_books (one BatchGetItem) → each command's saga over the books in memory
        → write_together (one TransactWriteItems) → [the handler publishes, deletes]

Each command runs the very saga it runs alone (`Saga.handle`), over a `GroupLedger`: its
reads are served from the books, its write is checked as the store checks it (the fence,
the order's state, a balance never below zero at any point of the sequence, a record's
absence, the daily limit) and kept. A refused write is answered by the saga's own
decision (the order ends FAILED) and its neighbours still apply; a cancel behind its
order sees it placed. A command the saga rejects ends the batch before it: it is answered
alone, its rejection published before anything after it is written, and the batch goes
on after it. The kept writes are then committed together,
conditioned on the books being still as read: whatever changed since (another writer,
an answer lost, a record already there) refuses the whole, nothing is written, and the
handler carries the batch out one command at a time instead, which finds what is stored.
So the ledger and the events are those of one-at-a-time processing, at a read, a write, a
publish and a delete for the whole batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from order_processor.domain.assets import normalise_asset_id
from order_processor.domain.balances import TransactionType
from order_processor.domain.commands import AnyCommand, Convert, Deposit, Withdraw
from order_processor.domain.events import Event
from order_processor.domain.ports import (
    MAX_WRITE_ITEMS,
    Books,
    Ledger,
    LedgerWrite,
    Snapshot,
    Wanted,
    day_key,
    items_touched,
)
from order_processor.domain.steps import Step
from order_processor.exceptions import CommandRejected, OrderProcessorError
from order_processor.saga.convert import sold_id
from order_processor.saga.engine import Saga
from order_processor.saga.memory import MemoryLedger

Answer = tuple[Event, ...]  # the events a command's saga published


class BooksMoved(OrderProcessorError):
    """The user's fence moved between two reads of one batch: decide no further."""


@dataclass
class GroupLedger:
    """The `Ledger` a batch is decided over: the books read once, in memory; what a command
    comes to need that the first read did not ask for is read then, at the same fence."""

    store: Ledger
    books: Books
    memory: MemoryLedger
    changes: list[LedgerWrite] = field(default_factory=list)

    @classmethod
    async def open(cls, store: Ledger, username: str, wanted: Wanted) -> GroupLedger:
        books = await store.read_books(username, wanted)
        return cls(store, books, MemoryLedger.of(books))

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
        await self._know(
            Wanted(
                order_ids=frozenset({order_id} if order_id else ()),
                asset_ids=frozenset({normalise_asset_id(asset_id)} if asset_id else ()),
                funds_ids=frozenset({funds_id} if funds_id else ()),
                currencies=frozenset(currencies),
            )
        )
        return await self.memory.read(
            username,
            order_id=order_id,
            asset_id=asset_id,
            funds_id=funds_id,
            with_user=with_user,
            currencies=currencies,
        )

    async def write(self, change: LedgerWrite) -> None:
        await self._know(
            Wanted(
                order_ids=frozenset({change.order.order_id} if change.order else ()),
                asset_ids=frozenset(t.asset_id for t in change.assets),
                days=frozenset({day_key(change)} if change.daily else ()),
                currencies=frozenset(r.currency for r in change.cash),
            )
        )
        await self.memory.write(change)
        self.changes.append(change)

    async def read_books(self, username: str, wanted: Wanted) -> Books:
        raise NotImplementedError("a batch's books are read once, by the batch")

    async def write_together(self, books: Books, changes: Sequence[LedgerWrite]) -> None:
        raise NotImplementedError("a batch is written once, by the batch")

    async def _know(self, wanted: Wanted) -> None:
        missing = wanted - self.books.wanted
        if not missing:
            return
        more = await self.store.read_books(self.books.username, missing)
        if more.fence != self.books.fence:
            raise BooksMoved(f"the books of {self.books.username} changed during the batch")
        self.books = self.books.with_more(more)
        self.memory.learn(more)


@dataclass
class Collected:
    """The events a command's saga published, kept to go out with the batch's."""

    events: list[Event] = field(default_factory=list)

    async def publish(self, events: Sequence[Event]) -> None:
        self.events += events


@dataclass
class Deferred:
    """The saga's counts, counted once the batch is written (a batch carried out one by
    one after all must not count twice). A step's time in memory is not a step's time:
    the batch's write is observed as the step `grouped`."""

    calls: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self.calls.append((name, amount, labels))

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        pass


@dataclass(frozen=True)
class Together:
    """A batch's first `len(answers)` commands, decided: the books they were decided from,
    the writes to commit, each command's answer. The rest were not decided (a command
    the saga could not carry out in memory, or the write's item limit): they go on alone."""

    books: Books
    changes: tuple[LedgerWrite, ...]
    answers: tuple[Answer, ...]
    metrics: Deferred
    # The next command's rejection, decided right after the others (what it would be
    # decided from alone, once they are written): answered as soon as they are.
    rejected: CommandRejected | None = None
    # Each decided command's last write, for its log line: (order id, step), or None.
    last_writes: tuple[tuple[str | None, Step] | None, ...] = ()


def wanted_by(commands: Sequence[AnyCommand], now: datetime) -> Wanted:
    """What the batch's commands name: their orders and assets, the funds records of
    their ids, today's counts against the daily limits and the currencies they move."""
    orders: set[str] = set()
    assets: set[str] = set()
    funds: set[str] = set()
    days: set[tuple[str, str]] = set()
    currencies: set[str] = set()
    for command in commands:
        if isinstance(command, Deposit | Withdraw):
            kind = (
                TransactionType.DEPOSIT
                if isinstance(command, Deposit)
                else TransactionType.WITHDRAW
            )
            funds.add(command.command_id)
            # Counted in the base currency whatever the currency (saga.funds): as a
            # base-currency record is (`counted`).
            days.add((kind.value, now.date().isoformat()))
            currencies.add(command.payload.currency)
            continue
        if isinstance(command, Convert):
            funds.add(sold_id(command.command_id))
            currencies |= {command.payload.sell, command.payload.buy}
            continue
        payload = command.payload
        if order_id := getattr(payload, "order_id", None):
            orders.add(order_id)
        if asset_id := getattr(payload, "asset_id", None):
            assets.add(normalise_asset_id(asset_id))
    return Wanted(
        frozenset(orders),
        frozenset(assets),
        frozenset(funds),
        frozenset(days),
        frozenset(currencies),
    )


async def decide_together(saga: Saga, commands: Sequence[AnyCommand]) -> Together:
    """Each command in turn, in memory, as `saga` carries it out alone, up to the first the
    saga rejects or cannot carry out (a bug, what the books cannot answer) or whose writes
    would pass the transaction's item limit: that one and those after it are left."""
    username = commands[0].username
    ledger = await GroupLedger.open(saga.ledger, username, wanted_by(commands, saga.clock()))
    metrics = Deferred()
    scratch = replace(saga, ledger=ledger, faults=saga.faults.without_crashes(), metrics=metrics)
    answers: list[Answer] = []
    last_writes: list[tuple[str | None, Step] | None] = []
    rejected = None
    for command in commands:
        written, counted = len(ledger.changes), len(metrics.calls)
        answer = await _decided(scratch, command)
        if isinstance(answer, tuple) and items_touched(ledger.changes) <= MAX_WRITE_ITEMS:
            answers.append(answer)
            mine = ledger.changes[written:]
            last = mine[-1] if mine else None
            last_writes.append(
                (last.order.order_id if last.order else None, last.step) if last else None
            )
            continue
        if isinstance(answer, CommandRejected) and len(ledger.changes) == written:
            rejected = answer  # (one that wrote first is answered alone, after its write)
        del ledger.changes[written:]
        del metrics.calls[counted:]
        break
    return Together(
        ledger.books, tuple(ledger.changes), tuple(answers), metrics, rejected, tuple(last_writes)
    )


async def _decided(scratch: Saga, command: AnyCommand) -> Answer | CommandRejected | None:
    """The command's events; its rejection (it ends the batch: answered before anything
    after it is written, whose effects its next delivery would otherwise be decided
    after); None if the saga cannot carry it out in memory (carried out alone, from a
    fresh read, it meets that again and is answered there)."""
    events = Collected()
    try:
        await replace(scratch, events=events).handle(command)
    except CommandRejected as rejection:
        return rejection
    except Exception:
        return None
    return tuple(events.events)


async def commit_together(saga: Saga, together: Together) -> None:
    """The batch's one write; its metrics counted once it is in."""
    saga.faults.after_commit(Step.GROUPED)
    if together.changes:
        started = time.perf_counter()
        await saga.ledger.write_together(together.books, together.changes)
        for step in dict.fromkeys(change.step for change in together.changes):
            saga.faults.after_commit(step)
        elapsed = time.perf_counter() - started
        saga.metrics.observe("saga_step_seconds", elapsed, step=Step.GROUPED)
    for name, amount, labels in together.metrics.calls:
        saga.metrics.inc(name, amount, **labels)
