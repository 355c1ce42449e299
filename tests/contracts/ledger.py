"""The `Ledger` port's contract: a write commits whole or not at all, and of everything
that refuses it, one refusal is named, in this precedence: a moved fence, then a changed
order or price (both decided again from a fresh read), then a record of the step that
exists already (the step was applied: answered from what is stored), then the user's and
the money's rules in the write's order (user, USD, asset, the day's total)."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import pytest

from order_processor.domain.assets import AssetTransactionType
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.fx import Quote
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.ports import Books, DailyCount, Ledger, LedgerWrite, Wanted, day_key
from order_processor.domain.steps import Step
from order_processor.exceptions import (
    BalanceNotFoundException,
    EntityAlreadyExistsException,
    FenceConflictException,
    InactiveUserException,
    InsufficientAssetBalanceException,
    InsufficientBalanceException,
    LimitExceededException,
    OrderChangedException,
    UserNotFoundException,
)
from order_processor.saga.convert import conversion_records
from order_processor.saga.records import asset_record, usd_record

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
Pair = tuple[Decimal, Decimal]


class LedgerWorld(Protocol):
    """A ledger and what a test needs around it, which only its adapter knows how to set."""

    @property
    def ledger(self) -> Ledger: ...

    async def open_balance(self, username: str) -> None:
        """A zero USD balance (a user's, or one without a profile)."""
        ...

    async def register(self, username: str, *, active: bool) -> None:
        """The user's profile (with its balance opened)."""
        ...

    async def list_asset(self, asset_id: str, price: str) -> str | None:
        """A new asset at `price`; the id of the update that set it."""
        ...

    async def reprice(self, asset_id: str, price: str) -> None: ...

    async def usd_of(self, username: str) -> Pair: ...

    async def holding_of(self, username: str, asset_id: str) -> Pair: ...

    async def cash_of(self, username: str, currency: str) -> Pair | None:
        """The user's balance in `currency`; None if never opened."""
        ...

    async def liquidity_of(self, username: str, currency: str) -> Decimal:
        """The exchange's liquidity account in `currency`, its part with this user."""
        ...

    async def set_rate(self, currency: str, rate: str) -> None:
        """`currency`'s rate against the base currency, observed at NOW."""
        ...


# What refuses the write, in the contract's precedence; each is set up on its own.
PRECEDENCE: list[tuple[str, type[Exception]]] = [
    ("stale fence", FenceConflictException),
    ("order moved on", OrderChangedException),
    ("price moved", OrderChangedException),
    ("record exists", EntityAlreadyExistsException),
    ("user disabled", InactiveUserException),
    ("too little USD", InsufficientBalanceException),
    ("too little asset", InsufficientAssetBalanceException),
    ("daily limit", LimitExceededException),
]
REFUSALS = [
    *PRECEDENCE,
    ("order exists", OrderChangedException),
    ("no user", UserNotFoundException),
    ("no balance", BalanceNotFoundException),
]


def sold(username: str, asset_id: str) -> Order:
    """A market sell of one unit at 10, completed: the order the write under test puts."""
    request = OrderCreate(order_type=OrderType.MARKET_SELL, asset_id=asset_id, quantity="1")
    return Order.place(username, request).evolve(
        sequence=3,
        step=Step.COMPLETED,
        status=OrderStatus.COMPLETED,
        price=Decimal("10"),
        total_amount=Decimal("10.00"),
        created_at=NOW,
        updated_at=NOW,
    )


def funds(username: str, kind: TransactionType, amount: str) -> LedgerWrite:
    record = BalanceTransactionCreate(username=username, transaction_type=kind, amount=amount)
    return LedgerWrite(username=username, fence=None, at=NOW, step=Step.FUNDS, cash=(record,))


def converted(username: str, conversion_id: str, sold: str, bought: str) -> LedgerWrite:
    """`sold` USD converted into `bought` EUR (the terms as recorded: rate bought/sold)."""
    terms = Quote("USD", "EUR", Decimal("0.92"), Decimal("0.9154"), Decimal("0.50"))
    out, into = conversion_records(
        username, conversion_id, terms, Decimal(sold), Decimal(bought), "test"
    )
    return LedgerWrite(
        username=username,
        fence=None,
        at=NOW,
        step=Step.CONVERTED,
        active_user=True,
        cash=(out, into),
    )


class LedgerContract:
    """Subclass it with a `world` fixture: every adapter of `Ledger` runs these tests."""

    @pytest.fixture
    def world(self) -> LedgerWorld:
        raise NotImplementedError

    async def given(self, world: LedgerWorld, faults: set[str]) -> tuple[LedgerWrite, str]:
        """A user holding one unit of an asset and 100 USD, and the write that sells the
        unit and pays a fee of 10 USD (counted against a daily limit of 50), decided from
        a read of the user, the order and the asset's price; then `faults`, each of which
        alone refuses it."""
        username, asset_id = f"user_{uuid.uuid4().hex[:12]}", f"C{uuid.uuid4().hex[:8].upper()}"
        ledger = world.ledger
        if "no balance" not in faults:
            await world.open_balance(username)
        if not faults & {"no user", "no balance"}:
            await world.register(username, active="user disabled" not in faults)
        if "no balance" not in faults:
            await ledger.write(funds(username, TransactionType.DEPOSIT, "100"))
        price_read = await world.list_asset(asset_id, "10")
        order = sold(username, asset_id)
        if "too little asset" not in faults:
            bought = order.model_copy(update={"order_id": order.order_id + "b"})
            held = asset_record(bought, AssetTransactionType.BUY)
            await ledger.write(
                LedgerWrite(username=username, fence=None, at=NOW, step=Step.HELD, assets=(held,))
            )
        fee = usd_record(order, TransactionType.ORDER_PAYMENT, Decimal("10.00"))
        if "record exists" in faults:
            await ledger.write(
                LedgerWrite(username=username, fence=None, at=NOW, step=Step.DEBITED, cash=(fee,))
            )
        if "order exists" in faults:
            await ledger.write(
                LedgerWrite(username=username, fence=None, at=NOW, step=Step.COMPLETED, order=order)
            )
        if "too little USD" in faults:
            left = (await world.usd_of(username))[0]
            await ledger.write(funds(username, TransactionType.WITHDRAW, str(left - 5)))
        read = await ledger.read(username, order_id=order.order_id, asset_id=asset_id)
        if "stale fence" in faults:  # another writer, between the read and the write
            await ledger.write(LedgerWrite(username=username, fence=None, at=NOW, step=Step.FUNDS))
        if "price moved" in faults:
            await world.reprice(asset_id, "11")
        write = LedgerWrite(
            username=username,
            fence=read.fence,
            at=NOW,
            step=Step.COMPLETED,
            active_user=not faults & {"no balance"},
            order=order,
            replaces=order.evolve(sequence=2) if "order moved on" in faults else None,
            cash=(fee,),
            assets=(asset_record(order, AssetTransactionType.SELL),),
            daily=DailyCount(fee, Decimal("5" if "daily limit" in faults else "50")),
            price_read=(asset_id, price_read),
        )
        return write, asset_id

    async def test_a_write_commits_the_order_the_money_and_the_records_and_moves_the_fence(
        self, world: LedgerWorld
    ) -> None:
        write, asset_id = await self.given(world, set())

        await world.ledger.write(write)

        assert write.order is not None
        after = await world.ledger.read(write.username, order_id=write.order.order_id)
        assert after.fence == (write.fence or 0) + 1
        assert after.order == write.order
        assert await world.usd_of(write.username) == (Decimal("90.00"), Decimal("0.00"))
        assert await world.holding_of(write.username, asset_id) == (Decimal(0), Decimal(0))

    @pytest.mark.parametrize(("fault", "refusal"), REFUSALS, ids=[f for f, _ in REFUSALS])
    async def test_each_refusal_names_what_refused_the_write_and_changes_nothing(
        self, world: LedgerWorld, fault: str, refusal: type[Exception]
    ) -> None:
        write, asset_id = await self.given(world, {fault})
        usd = await world.usd_of(write.username) if fault != "no balance" else None
        holding = await world.holding_of(write.username, asset_id)

        with pytest.raises(refusal):
            await world.ledger.write(write)

        assert (await world.usd_of(write.username) if usd else None) == usd
        assert await world.holding_of(write.username, asset_id) == holding

    @pytest.mark.parametrize(
        ("first", "second"),
        list(itertools.combinations(PRECEDENCE, 2)),
        ids=[f"{a}|{b}" for (a, _), (b, _) in itertools.combinations(PRECEDENCE, 2)],
    )
    async def test_of_two_refusals_the_earlier_in_precedence_is_named(
        self,
        world: LedgerWorld,
        first: tuple[str, type[Exception]],
        second: tuple[str, type[Exception]],
    ) -> None:
        write, _ = await self.given(world, {first[0], second[0]})

        with pytest.raises(first[1]):
            await world.ledger.write(write)

    # The group commit: a batch's books read once, its writes committed together.

    async def books_for(self, world: LedgerWorld, write: LedgerWrite, asset_id: str) -> Books:
        assert write.order is not None
        wanted = Wanted(
            order_ids=frozenset({write.order.order_id}),
            asset_ids=frozenset({asset_id}),
            funds_ids=frozenset({"never-used"}),
            days=frozenset({day_key(write)}),
        )
        return await world.ledger.read_books(write.username, wanted)

    async def test_books_hold_what_exists_and_leave_out_what_does_not(
        self, world: LedgerWorld
    ) -> None:
        write, asset_id = await self.given(world, set())

        books = await self.books_for(world, write, asset_id)

        assert books.fence == write.fence
        assert books.user is not None
        assert books.user.is_active
        assert books.cash["USD"] == (Decimal("100.00"), Decimal("0.00"))
        assert books.holdings == {asset_id: (Decimal(1), Decimal(0))}
        assert books.assets[asset_id].price == Decimal("10")
        assert (books.orders, books.funds, books.daily) == ({}, {}, {})

    async def test_writes_together_commit_what_they_would_one_by_one(
        self, world: LedgerWorld
    ) -> None:
        write, asset_id = await self.given(world, set())
        books = await self.books_for(world, write, asset_id)
        deposit = funds(write.username, TransactionType.DEPOSIT, "20")

        await world.ledger.write_together(books, [deposit, replace(write, fence=books.fence + 1)])

        assert write.order is not None
        after = await world.ledger.read(write.username, order_id=write.order.order_id)
        assert (after.fence, after.order) == (books.fence + 2, write.order)
        assert await world.usd_of(write.username) == (Decimal("110.00"), Decimal("0.00"))
        assert await world.holding_of(write.username, asset_id) == (Decimal(0), Decimal(0))
        again = await self.books_for(world, write, asset_id)
        assert again.daily == {day_key(write): Decimal("10.00")}

    async def test_writes_together_are_refused_whole_when_the_books_moved_since_read(
        self, world: LedgerWorld
    ) -> None:
        write, asset_id = await self.given(world, set())
        books = await self.books_for(world, write, asset_id)
        await world.ledger.write(funds(write.username, TransactionType.DEPOSIT, "5"))
        deposit = funds(write.username, TransactionType.DEPOSIT, "20")

        with pytest.raises(FenceConflictException):
            await world.ledger.write_together(books, [deposit, write])

        assert await world.usd_of(write.username) == (Decimal("105.00"), Decimal("0.00"))
        assert await world.holding_of(write.username, asset_id) == (Decimal(1), Decimal(0))

    # Currencies: a balance per currency, the exchange's liquidity moved by conversions.

    async def funded(self, world: LedgerWorld) -> str:
        username = f"user_{uuid.uuid4().hex[:12]}"
        await world.register(username, active=True)
        await world.ledger.write(funds(username, TransactionType.DEPOSIT, "100"))
        return username

    async def test_a_conversion_moves_the_user_and_the_exchange_opposite_ways_per_currency(
        self, world: LedgerWorld
    ) -> None:
        username = await self.funded(world)

        await world.ledger.write(converted(username, "x-1", "50.00", "45.77"))

        assert await world.cash_of(username, "USD") == (Decimal("50.00"), Decimal("0.00"))
        assert await world.cash_of(username, "EUR") == (Decimal("45.77"), Decimal("0.00"))
        assert await world.liquidity_of(username, "USD") == Decimal("50.00")
        assert await world.liquidity_of(username, "EUR") == Decimal("-45.77")

    async def test_a_debit_of_a_currency_never_held_is_too_little_and_writes_nothing(
        self, world: LedgerWorld
    ) -> None:
        username = await self.funded(world)
        record = BalanceTransactionCreate(
            username=username, transaction_type=TransactionType.WITHDRAW, currency="EUR", amount="1"
        )
        spend = LedgerWrite(username=username, fence=None, at=NOW, step=Step.FUNDS, cash=(record,))

        with pytest.raises(InsufficientBalanceException):
            await world.ledger.write(spend)

        assert await world.cash_of(username, "EUR") is None

    async def test_a_conversion_beyond_the_balance_is_too_little_and_moves_no_liquidity(
        self, world: LedgerWorld
    ) -> None:
        username = await self.funded(world)

        with pytest.raises(InsufficientBalanceException):
            await world.ledger.write(converted(username, "x-2", "100.01", "91.55"))

        assert await world.cash_of(username, "USD") == (Decimal("100.00"), Decimal("0.00"))
        assert await world.cash_of(username, "EUR") is None
        assert await world.liquidity_of(username, "USD") == Decimal(0)

    async def test_rates_and_each_currencys_balance_are_read_with_the_books(
        self, world: LedgerWorld
    ) -> None:
        username = await self.funded(world)
        rate = f"0.{uuid.uuid4().int % 10**8:08d}1"  # rates are shared: this test's own
        await world.set_rate("NOK", rate)  # (a currency no other test sets)
        await world.ledger.write(converted(username, "x-3", "10.00", "9.15"))

        snapshot = await world.ledger.read(username, currencies=("NOK",))
        books = await world.ledger.read_books(
            username, Wanted(currencies=frozenset({"NOK", "EUR"}))
        )

        assert snapshot.rates["NOK"].rate == Decimal(rate)
        assert books.rates["NOK"].rate == Decimal(rate)
        assert books.cash == {
            "USD": (Decimal("90.00"), Decimal("0.00")),
            "EUR": (Decimal("9.15"), Decimal("0.00")),
        }

    async def test_conversions_written_together_are_refused_whole_if_a_balance_moved(
        self, world: LedgerWorld
    ) -> None:
        username = await self.funded(world)
        await world.ledger.write(converted(username, "x-4", "10.00", "9.15"))
        books = await world.ledger.read_books(username, Wanted(currencies=frozenset({"EUR"})))
        again = converted(username, "x-5", "10.00", "9.15")

        await world.ledger.write_together(books, [replace(again, fence=books.fence)])
        with pytest.raises(FenceConflictException):
            await world.ledger.write_together(books, [converted(username, "x-6", "1.00", "0.91")])

        assert await world.cash_of(username, "EUR") == (Decimal("18.30"), Decimal("0.00"))
        assert await world.liquidity_of(username, "EUR") == Decimal("-18.30")
