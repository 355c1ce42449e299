"""The saga's ports: what a command reads and writes, said in the trading domain.

`Ledger` is one user's books: `read` returns in one round trip everything a command
needs to decide (`Snapshot`), `write` commits one `LedgerWrite` atomically or not at all.
The store implements it over DynamoDB (one BatchGetItem, one TransactWriteItems); the
unit tests implement it in memory. The saga never sees a request, a condition or a
botocore error: a refused write comes back as one of the domain's exceptions, naming
what refused it (`InsufficientBalanceException`, `FenceConflictException`, ...).

Every write is fenced: it commits only if the user's fencing token is still the one
read (and no lease holds the user), and moves it on. The lock is thus taken and released
in the write itself: whoever changed the user's books since the read makes this write
fail, so a stalled worker can write nothing, and no lock is ever left behind by a crash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from order_processor.domain.assets import Asset, AssetTransaction
from order_processor.domain.balances import BalanceTransaction, BalanceTransactionCreate
from order_processor.domain.commands import AnyCommand
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.events import Event
from order_processor.domain.fx import ExchangeRate
from order_processor.domain.orders import Order
from order_processor.domain.steps import Step
from order_processor.domain.triggers import PriceMove
from order_processor.domain.users import User


@dataclass(frozen=True)
class Snapshot:
    """One user's items a command needs, read together; None where absent."""

    username: str
    fence: int  # the user's fencing token as read (0: never written)
    order: Order | None = None
    user: User | None = None
    asset: Asset | None = None
    funds: BalanceTransaction | None = None  # what a Deposit/Withdraw with this id wrote
    rates: Mapping[str, ExchangeRate] = field(default_factory=dict)  # those asked for


@dataclass(frozen=True)
class DailyCount:
    """A deposit or withdrawal counted against its UTC day's limit, atomically."""

    record: BalanceTransactionCreate
    limit: Decimal


@dataclass(frozen=True)
class LedgerWrite:
    """One atomic change of one user's books: the order's new state, conditioned on the
    stored state it `replaces` (its status and sequence) or, when that is None, on the
    order's absence; the cash records (each in its currency) and asset records, each with
    its balance change (a debit conditioned on what is available or held; a conversion's
    records move the exchange's liquidity account in each currency the other way); a
    daily-limit count. `step` names the
    change (the order's step marker, or `Step.FUNDS`) for logs, metrics and fault hooks.

    `fence` is the token read; None for a write decided from nothing read (every
    condition it depends on is in the write itself, `active_user` among them): it then
    only moves the token, so that a writer who read before it fails."""

    username: str
    fence: int | None
    at: datetime
    step: Step
    active_user: bool = False  # the user must exist and be active
    order: Order | None = None
    replaces: Order | None = None
    cash: tuple[BalanceTransactionCreate, ...] = ()
    assets: tuple[AssetTransaction, ...] = ()
    daily: DailyCount | None = None
    # The price the write was decided at must still be the inventory's: (asset id, the
    # update that set it). A trailing stop starts from the price it read; a price the
    # matcher applied between the read and this write would never be one of its peaks.
    price_read: tuple[str, str | None] | None = None


Pair = tuple[Decimal, Decimal]  # a balance: (available, held)
# A daily limit's count: (the transaction type, UTC day). One count per type for every
# currency: the saga counts each in the base currency, at its value (saga.funds).
DayKey = tuple[str, str]


def counted(record: BalanceTransactionCreate) -> str:
    """What a deposit or withdrawal is counted as against its daily limit: its type. The
    count is in the base currency; a record in another is a bug, refused here."""
    if record.currency != BASE_CURRENCY:
        raise ValueError(f"a daily count is in {BASE_CURRENCY}, not {record.currency}")
    return record.transaction_type.value


@dataclass(frozen=True)
class Wanted:
    """What a batch of one user's commands may decide from, beyond the user, the fence and
    the base-currency balance (always read): orders, assets (each with the user's holding
    of it), funds records by id, the days' counts against the daily limits and currencies
    (each with the user's balance in it and its rate)."""

    order_ids: frozenset[str] = frozenset()
    asset_ids: frozenset[str] = frozenset()
    funds_ids: frozenset[str] = frozenset()
    days: frozenset[DayKey] = frozenset()
    currencies: frozenset[str] = frozenset()

    def __sub__(self, other: Wanted) -> Wanted:
        return Wanted(
            self.order_ids - other.order_ids,
            self.asset_ids - other.asset_ids,
            self.funds_ids - other.funds_ids,
            self.days - other.days,
            self.currencies - other.currencies - {BASE_CURRENCY},
        )

    def __or__(self, other: Wanted) -> Wanted:
        return Wanted(
            self.order_ids | other.order_ids,
            self.asset_ids | other.asset_ids,
            self.funds_ids | other.funds_ids,
            self.days | other.days,
            self.currencies | other.currencies,
        )

    def __bool__(self) -> bool:
        return bool(
            self.order_ids or self.asset_ids or self.funds_ids or self.days or self.currencies
        )


@dataclass(frozen=True)
class Books:
    """One user's books as read in one round trip for a batch of their commands (the group
    commit): what `wanted` asked for, each item absent from its mapping when it does not
    exist (a currency absent from `cash`: no balance in it; a holding absent: never
    held)."""

    username: str
    fence: int
    wanted: Wanted = field(default_factory=Wanted)
    user: User | None = None
    cash: Mapping[str, Pair] = field(default_factory=dict)
    holdings: Mapping[str, Pair] = field(default_factory=dict)
    orders: Mapping[str, Order] = field(default_factory=dict)
    assets: Mapping[str, Asset] = field(default_factory=dict)
    funds: Mapping[str, BalanceTransaction] = field(default_factory=dict)
    daily: Mapping[DayKey, Decimal] = field(default_factory=dict)
    rates: Mapping[str, ExchangeRate] = field(default_factory=dict)

    def with_more(self, more: Books) -> Books:
        """These books and `more` (read later, at the same fence), together."""
        return Books(
            self.username,
            self.fence,
            self.wanted | more.wanted,
            self.user,
            {**more.cash, **self.cash},
            {**more.holdings, **self.holdings},
            {**more.orders, **self.orders},
            {**more.assets, **self.assets},
            {**more.funds, **self.funds},
            {**more.daily, **self.daily},
            {**more.rates, **self.rates},
        )


# DynamoDB's TransactWriteItems takes 100 items: the most one atomic write may touch.
MAX_WRITE_ITEMS = 100


def items_touched(changes: Iterable[LedgerWrite]) -> int:
    """The items of the user's books `changes` touch, each counted once (the fence, the
    user's profile, each order, balance, record, day's count and price read): what they
    cost written together."""
    touched: set[tuple[str, ...]] = {("fence",)}
    for change in changes:
        if change.active_user:
            touched.add(("user",))
        if change.order is not None:
            touched.add(("order", change.order.order_id))
        touched |= {("cash", r.currency) for r in change.cash}
        touched |= {
            ("liquidity", r.currency) for r in change.cash if r.transaction_type.is_conversion
        }
        touched |= {("record", r.transaction_id) for r in change.cash}
        touched |= {("holding", t.asset_id) for t in change.assets}
        touched |= {("trade", t.transaction_id) for t in change.assets}
        if change.daily is not None:
            touched.add(("day", *day_key(change)))
        if change.price_read is not None:
            touched.add(("price", change.price_read[0]))
    return len(touched)


def day_key(change: LedgerWrite) -> DayKey:
    """The daily count a change's deposit or withdrawal is counted in: its type's (and
    currency's), on the UTC day of the write."""
    assert change.daily is not None
    return (counted(change.daily.record), change.at.date().isoformat())


class Ledger(Protocol):
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
        """The user's fence and what is asked for, in one round trip (strongly
        consistent): the profile, an order, an asset, a funds record by id, the rates
        of `currencies`."""
        ...

    async def write(self, change: LedgerWrite) -> None: ...

    async def read_books(self, username: str, wanted: Wanted) -> Books:
        """The user's fence, profile and base-currency balance and what `wanted` names,
        in one round trip (strongly consistent)."""
        ...

    async def write_together(self, books: Books, changes: Sequence[LedgerWrite]) -> None:
        """`changes`, decided one after another from `books` (each already checked as
        `write` would check it), committed as one atomic write: each order's last state,
        each balance by the changes' summed deltas, every record, each day's count.
        Conditioned on all it touches being still as read: the fence, the balances'
        amounts, each order's status and sequence (or absence), each record's absence,
        the user still active, the prices read, the days' counts within their limits.
        Whatever changed since: FenceConflictException, and nothing is written. At most
        MAX_WRITE_ITEMS items (`items_touched`)."""
        ...


class OrderBook(Protocol):
    """The resting orders as the matcher and the sweeper see them: found through the
    store's sparse indexes (never a scan), each a QUEUED order unless said otherwise.

    The store decides nothing here: the matcher decides a trailing stop's move
    (`domain.triggers.trailed`) and `move_trail` only applies it, on condition."""

    async def reached(self, asset_id: str, price: Decimal, move: PriceMove) -> list[Order]:
        """The orders a `move` to `price` reaches (`domain.triggers.reaches`): one index
        query per direction, whatever the book holds. Among them the matcher finds the
        ones the price triggers and the trails it improves on."""
        ...

    async def move_trail(self, order: Order, best: Decimal, stop: Decimal) -> Order:
        """`order` with `best` as its best price and `stop` as its stop, its sequence up by
        one, written only if the stored order is still QUEUED and its best still worse
        than `best`; the order as moved. Refused: OrderChangedException, whose `current`
        detail is the order as stored (None: no such order)."""
        ...

    async def due_orders(self, now: datetime) -> list[Order]:
        """The orders whose expiry is at or before `now`."""
        ...

    async def stalled_orders(self, changed_before: datetime) -> list[Order]:
        """The PENDING and PROCESSING orders unchanged since before `changed_before`."""
        ...


@dataclass(frozen=True)
class PriceChange:
    """A price written, and the asset as it stood just before (read in the same write):
    the move from the one to the other tells the matcher which side of the book it can
    reach."""

    before: Asset
    after: Asset

    @property
    def replayed(self) -> bool:
        """The same update written again (its redelivery): the price it replaced then is
        gone, so is the direction of its move."""
        return self.before.price_command_id == self.after.price_command_id


class Inventory(Protocol):
    """The assets and their prices, as the matcher moves them."""

    async def change_price(
        self,
        asset_id: str,
        price: Decimal,
        *,
        as_of: datetime | None = None,
        command_id: str | None = None,
    ) -> PriceChange:
        """The price observed at `as_of` by the update `command_id`, written only if it is
        newer than the stored one (or the same update's); else StalePriceException, whose
        `current` detail is the asset as stored. An unknown asset: AssetNotFoundException."""
        ...

    def every_asset(self, *, active_only: bool = False) -> AsyncIterator[Asset]: ...


class ExchangeRates(Protocol):
    """The currencies' rates against the base currency, as the price feed moves them."""

    async def change_rate(
        self, currency: str, rate: Decimal | str, *, as_of: datetime, command_id: str
    ) -> ExchangeRate:
        """Written only if newer than the stored rate (or the same update's); else
        StalePriceException, whose `current` detail is the rate as stored."""
        ...

    async def rates(self) -> dict[str, ExchangeRate]: ...


class CommandSink(Protocol):
    """Where the matcher and the sweeper send the commands they derive (the commands
    queue)."""

    @property
    def fifo(self) -> bool: ...

    async def send_batch(
        self, commands: Sequence[AnyCommand], *, in_flight: int = 1, independent: bool = False
    ) -> list[str]:
        """Every command, `in_flight` batches at once; `independent` commands (each
        re-checked on its own) may be sent again, those that failed alone."""
        ...


class MetricsSink(Protocol):
    """Where the saga counts what it did (the worker's Prometheus metrics)."""

    def inc(self, name: str, amount: float = 1, **labels: str) -> None: ...

    def observe(self, name: str, seconds: float, **labels: str) -> None: ...


class NoMetrics:
    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        pass

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        pass


class EventSink(Protocol):
    async def publish(self, events: Sequence[Event]) -> None:
        """Publish in order; an event published again keeps its id."""
        ...


class CommandFailures(Protocol):
    """How often a command failed for a reason nobody foresaw (a bug, a permission): its
    budget before it goes to the dead letters. Transient failures never count."""

    async def record(self, username: str, command_id: str, attempt: str) -> int:
        """Count this `attempt` (one delivery's id) of the command as failed; the number
        of distinct attempts counted so far. Counting the same attempt again (a retry
        whose answer was lost) changes nothing."""
        ...
