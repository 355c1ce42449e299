"""The group commit against one-at-a-time processing, over the in-memory ports: any batch of
one user's commands, handled together or one by one, leaves the same ledger and publishes
the same events; and what a batch costs."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from order_processor.domain.assets import Asset
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.commands import AnyCommand, _Envelope
from order_processor.domain.events import EventType
from order_processor.domain.fx import ExchangeRate
from order_processor.domain.orders import OrderCreate, OrderType
from order_processor.domain.ports import Books, LedgerWrite, Wanted
from order_processor.domain.steps import Step
from order_processor.exceptions import FenceConflictException
from order_processor.handlers.admission import Admission
from order_processor.handlers.commands import CommandHandler
from order_processor.messaging.consumer import Ack, Message
from order_processor.messaging.producer import CommandFactory
from order_processor.saga.engine import Saga
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager
from tests.unit.fakes import MemoryEvents, MemoryFailures, MemoryLedger
from tests.unit.test_saga import LIMITS, NOW, USER, world

SECRET = "group-commit-secret-" + "g" * 32
TOKENS = TokenManager(SECRET)
FACTORY = CommandFactory(TOKENS)


class CountingLedger(MemoryLedger):
    """Counts the round trips a real store would make."""

    round_trips: int = 0
    inside: bool = False  # the writes a write together applies are not round trips

    async def read(self, username: str, **wanted: Any) -> Any:
        self.round_trips += 1
        return await super().read(username, **wanted)

    async def write(self, change: LedgerWrite) -> None:
        self.round_trips += not self.inside
        await super().write(change)

    async def read_books(self, username: str, wanted: Wanted) -> Books:
        self.round_trips += 1
        return await super().read_books(username, wanted)

    async def write_together(self, books: Books, changes: Any) -> None:
        self.round_trips += 1
        self.inside = True
        try:
            await super().write_together(books, changes)
        finally:
            self.inside = False


def handler_over(usd: str, btc: str, *, together: bool) -> tuple[CommandHandler, CountingLedger]:
    _, seeded, _ = world(usd=usd, btc=btc, price="100")
    ledger = CountingLedger()
    ledger.users, ledger.cash, ledger.assets = dict(seeded.users), dict(seeded.cash), seeded.assets
    ledger.holdings = dict(seeded.holdings)
    # Currencies: two rates, and an asset quoted in euros.
    ledger.rates = {
        currency: ExchangeRate(currency=currency, rate=rate, as_of=NOW)
        for currency, rate in (("EUR", "1.08"), ("JPY", "0.0067"))
    }
    ledger.assets = {
        **ledger.assets,
        "BTCEUR": Asset(asset_id="BTCEUR", name="B", price=Decimal("90"), quote_currency="EUR"),
    }
    events = MemoryEvents()
    handler = CommandHandler(
        saga=Saga(ledger, events, LIMITS, clock=lambda: NOW),
        events=events,
        admission=Admission(TOKENS),
        audit=AuditLogger(io.StringIO()),
        failures=MemoryFailures(),
        group_commit=together,
    )
    return handler, ledger


def order(kind: OrderType, quantity: str, limit: str | None = None) -> dict[str, Any]:
    return {"order_type": kind, "asset_id": "BTC", "quantity": quantity, "limit_price": limit}


MARKET = [OrderType.MARKET_BUY, OrderType.MARKET_SELL]
LIMIT = [OrderType.LIMIT_BUY, OrderType.LIMIT_SELL]
amounts = st.sampled_from(["5", "50", "400", "6000"])
quantities = st.sampled_from(["0.1", "1", "3", "9"])
limits = st.sampled_from(["90", "100", "120"])
steps = st.one_of(
    st.tuples(st.just("deposit"), amounts),
    st.tuples(st.just("withdraw"), amounts),
    st.tuples(
        st.just("order"), st.sampled_from([OrderType.MARKET_BUY, OrderType.MARKET_SELL]), quantities
    ),
    st.tuples(
        st.just("order"),
        st.sampled_from([OrderType.LIMIT_BUY, OrderType.LIMIT_SELL]),
        quantities,
        limits,
    ),
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("again"), st.integers(0, 9)),
    # Currencies: deposits and withdrawals in euros and yen, conversions among the three,
    # and market buys of the euro-quoted asset, paid in euros or in dollars.
    st.tuples(st.just("deposit"), amounts, st.sampled_from(["EUR", "JPY"])),
    st.tuples(st.just("withdraw"), amounts, st.sampled_from(["EUR", "JPY"])),
    st.tuples(
        st.just("convert"),
        amounts,
        st.sampled_from([("USD", "EUR"), ("EUR", "JPY"), ("JPY", "USD")]),
    ),
    st.tuples(st.just("pay_in"), quantities, st.sampled_from(["EUR", "USD"])),
)


def commands_of(plan: list[tuple[Any, ...]]) -> list[AnyCommand]:
    """The plan's commands: a cancel names an earlier order (or one never placed), `again`
    sends an earlier command again (a redelivery, or a producer's retry)."""
    sent: list[AnyCommand] = []
    placed: list[str] = []
    for step in plan:
        kind = step[0]
        currency = step[2] if kind in ("deposit", "withdraw") and len(step) > 2 else "USD"
        if kind == "deposit":
            sent.append(FACTORY.deposit(USER, step[1], currency=currency))
        elif kind == "withdraw":
            sent.append(FACTORY.withdraw(USER, step[1], currency=currency))
        elif kind == "convert":
            sent.append(FACTORY.convert(USER, step[1], *step[2]))
        elif kind == "pay_in":
            request = OrderCreate(
                order_type=OrderType.MARKET_BUY,
                asset_id="BTCEUR",
                quantity=step[1],
                pay_currency=step[2],
            )
            command = FACTORY.place_order(USER, request)
            placed.append(command.payload.order_id)
            sent.append(command)
        elif kind == "order":
            command = FACTORY.place_order(USER, OrderCreate(**order(*step[1:])))
            placed.append(command.payload.order_id)
            sent.append(command)
        elif kind == "cancel":
            order_id = placed[step[1] % len(placed)] if placed else "never-placed"
            sent.append(FACTORY.cancel(USER, order_id))
        elif sent:
            sent.append(sent[step[1] % len(sent)])
    return sent


def messages_of(commands: Sequence[_Envelope]) -> list[Message]:
    return [Message(f"m-{i}", f"r-{i}", c.body(), receive_count=1) for i, c in enumerate(commands)]


def ledger_of(ledger: MemoryLedger) -> tuple[Any, ...]:
    return (
        ledger.cash,
        {k: v for k, v in ledger.holdings.items() if v != (Decimal(0), Decimal(0))},
        ledger.orders,
        ledger.cash_records,
        ledger.asset_records,
        dict(ledger.daily),
        {k: v for k, v in ledger.liquidity.items() if v},
    )


def events_of(events: MemoryEvents) -> list[tuple[Any, ...]]:
    """What a follower sees: each event's id, type and data (a rejection's id is its
    message's, the same in both)."""
    return [(e.event_id, e.event_type, e.status, e.sequence, e.data) for e in events.published]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(steps, min_size=1, max_size=12),
    usd=st.sampled_from(["0", "300", "5000"]),
    btc=st.sampled_from(["0", "5"]),
)
async def test_a_batch_handled_together_leaves_what_one_by_one_leaves(
    plan: list[tuple[Any, ...]], usd: str, btc: str
) -> None:
    messages = messages_of(commands_of(plan))
    alone, alone_ledger = handler_over(usd, btc, together=False)
    together, together_ledger = handler_over(usd, btc, together=True)

    expected = await alone.handle_group(USER, messages)
    outcomes = await together.handle_group(USER, messages)

    assert outcomes == expected
    assert ledger_of(together_ledger) == ledger_of(alone_ledger)
    assert isinstance(together.events, MemoryEvents)
    assert isinstance(alone.events, MemoryEvents)
    assert events_of(together.events) == events_of(alone.events)


async def test_ten_market_orders_of_one_user_cost_one_read_and_one_write() -> None:
    commands = [
        FACTORY.place_order(USER, OrderCreate(**order(OrderType.MARKET_BUY, "0.1")))
        for _ in range(10)
    ]
    alone, alone_ledger = handler_over("1000", "0", together=False)
    together, together_ledger = handler_over("1000", "0", together=True)

    await alone.handle_group(USER, messages_of(commands))
    outcomes = await together.handle_group(USER, messages_of(commands))

    assert set(outcomes.values()) == {Ack()}
    assert together_ledger.available(USER) == (Decimal("900.00"), Decimal("0.00"))
    assert (alone_ledger.round_trips, together_ledger.round_trips) == (20, 2)


async def test_a_rejected_command_is_answered_alone_and_the_batch_goes_on_around_it() -> None:
    commands = [
        FACTORY.deposit(USER, "10"),
        FACTORY.cancel(USER, "never-placed"),
        FACTORY.place_order(USER, OrderCreate(**order(OrderType.MARKET_BUY, "0.1"))),
        FACTORY.place_order(USER, OrderCreate(**order(OrderType.MARKET_BUY, "0.1"))),
    ]
    together, ledger = handler_over("100", "0", together=True)

    outcomes = await together.handle_group(USER, messages_of(commands))

    assert set(outcomes.values()) == {Ack()}
    assert ledger.available(USER) == (Decimal("90.00"), Decimal("0.00"))
    assert isinstance(together.events, MemoryEvents)
    kinds = [e.event_type for e in together.events.published]
    assert kinds.count(EventType.COMMAND_REJECTED) == 1
    assert kinds.index(EventType.COMMAND_REJECTED) == 1  # after the deposit, before the buys
    # a read, the deposit written (the cancel, rejected from that read, ends the batch and
    # is answered at once), a read and a write for the two buys
    assert ledger.round_trips == 4


class MovedAfterRead(CountingLedger):
    """Another writer moves the user's books between the batch's read and its write."""

    async def write_together(self, books: Books, changes: Any) -> None:
        self.fences[books.username] = self.fences.get(books.username, 0) + 1
        await super().write_together(books, changes)


async def test_a_batch_whose_books_moved_is_carried_out_one_by_one() -> None:
    commands = [
        FACTORY.place_order(USER, OrderCreate(**order(OrderType.MARKET_BUY, "0.1")))
        for _ in range(3)
    ]
    together, _ = handler_over("100", "0", together=True)
    ledger = MovedAfterRead()
    base = together.saga.ledger
    assert isinstance(base, MemoryLedger)
    ledger.users, ledger.cash, ledger.assets, ledger.holdings = (
        base.users,
        base.cash,
        base.assets,
        base.holdings,
    )
    handler = replace(together, saga=replace(together.saga, ledger=ledger))

    outcomes = await handler.handle_group(USER, messages_of(commands))

    assert set(outcomes.values()) == {Ack()}
    assert ledger.available(USER) == (Decimal("70.00"), Decimal("0.00"))  # each once
    assert len(ledger.writes) == 3


async def test_writes_together_refuse_a_balance_changed_by_a_writer_without_the_fence() -> None:
    """The common package's DAOs move no fence: the amounts read are the batch's condition."""
    _, ledger, _ = world(usd="100")
    books = await ledger.read_books(USER, Wanted())
    ledger.cash[USER, "USD"] = (Decimal("40.00"), Decimal("0.00"))  # BalanceDAO.update_balance
    record = BalanceTransactionCreate(
        username=USER, transaction_type=TransactionType.WITHDRAW, amount="30"
    )
    withdrawal = LedgerWrite(username=USER, fence=None, at=NOW, step=Step.FUNDS, cash=(record,))

    with pytest.raises(FenceConflictException):
        await ledger.write_together(books, [withdrawal])

    assert ledger.available(USER) == (Decimal("40.00"), Decimal("0.00"))
