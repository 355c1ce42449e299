"""A user's books in memory with the store's semantics: the `Ledger` a batch of one
user's commands is decided over before its one write (the group commit), and the unit
tests' ledger. A write is checked whole (the fence, the order's condition, each balance's,
each record's absence, the daily total) and applied whole or not at all, refusals raised
as the store raises them (the contract: tests/contracts/ledger.py, which both adapters
run)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from order_processor.domain.assets import Asset, AssetTransaction, normalise_asset_id
from order_processor.domain.balances import BalanceTransaction
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.fx import ExchangeRate
from order_processor.domain.money import deepest_dip, exact_total
from order_processor.domain.orders import Order
from order_processor.domain.ports import Books, LedgerWrite, Pair, Snapshot, Wanted, counted
from order_processor.domain.users import User
from order_processor.exceptions import (
    BalanceNotFoundException,
    EntityAlreadyExistsException,
    FenceConflictException,
    InactiveUserException,
    InsufficientAssetBalanceException,
    InsufficientBalanceException,
    LimitExceededException,
    OrderChangedException,
    OrderProcessorError,
    UserNotFoundException,
)


@dataclass
class MemoryLedger:
    fences: dict[str, int] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    assets: dict[str, Asset] = field(default_factory=dict)
    cash: dict[tuple[str, str], Pair] = field(default_factory=dict)  # (user, currency)
    holdings: dict[tuple[str, str], Pair] = field(default_factory=dict)
    cash_records: dict[tuple[str, str], BalanceTransaction] = field(default_factory=dict)
    # The exchange's liquidity account, its part with each user: (user, currency).
    liquidity: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    rates: dict[str, ExchangeRate] = field(default_factory=dict)
    asset_records: dict[tuple[str, str], AssetTransaction] = field(default_factory=dict)
    daily: dict[tuple[str, str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    writes: list[LedgerWrite] = field(default_factory=list)
    reads: int = 0

    @classmethod
    def of(cls, books: Books) -> MemoryLedger:
        """The books as read, in memory."""
        memory = cls()
        memory.learn(books)
        return memory

    def learn(self, books: Books) -> None:
        """What `books` hold that these do not know yet (read later, for what the batch
        came to need): known items keep the state the batch gave them."""
        user = books.username
        self.fences.setdefault(user, books.fence)
        if books.user is not None:
            self.users.setdefault(user, books.user)
        for currency, pair in books.cash.items():
            self.cash.setdefault((user, currency), pair)
        for currency, rate in books.rates.items():
            self.rates.setdefault(currency, rate)
        for asset_id, pair in books.holdings.items():
            self.holdings.setdefault((user, asset_id), pair)
        for order_id, order in books.orders.items():
            self.orders.setdefault(order_id, order)
        for asset_id, asset in books.assets.items():
            self.assets.setdefault(asset_id, asset)
        for funds_id, record in books.funds.items():
            self.cash_records.setdefault((user, funds_id), record)
        for (kind, day), total in books.daily.items():
            self.daily.setdefault((user, kind, day), total)

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
        self.reads += 1
        snapshot = Snapshot(
            username=username,
            fence=self.fences.get(username, 0),
            order=self.orders.get(order_id) if order_id else None,
            user=self.users.get(username) if with_user else None,
            asset=self.assets.get(normalise_asset_id(asset_id)) if asset_id else None,
            funds=self.cash_records.get((username, funds_id)) if funds_id else None,
            rates={c: rate for c in currencies if (rate := self.rates.get(c))},
        )
        return snapshot

    async def read_books(self, username: str, wanted: Wanted) -> Books:
        self.reads += 1
        currencies = {BASE_CURRENCY, *wanted.currencies}
        return Books(
            username,
            self.fences.get(username, 0),
            wanted,
            self.users.get(username),
            {c: pair for c in currencies if (pair := self.cash.get((username, c)))},
            {a: pair for a in wanted.asset_ids if (pair := self.holdings.get((username, a)))},
            {o: order for o in wanted.order_ids if (order := self.orders.get(o))},
            {a: asset for a in wanted.asset_ids if (asset := self.assets.get(a))},
            {f: r for f in wanted.funds_ids if (r := self.cash_records.get((username, f)))},
            {d: self.daily[(username, *d)] for d in wanted.days if (username, *d) in self.daily},
            {c: rate for c in wanted.currencies if (rate := self.rates.get(c))},
        )

    async def write_together(self, books: Books, changes: Sequence[LedgerWrite]) -> None:
        """Checked as the store checks it: everything the changes touch still as read,
        then each change in turn; applied whole or not at all."""
        user = books.username
        if not self._as_read(books, changes):
            raise FenceConflictException(f"the books of {user} changed since read")
        saved = self._saved()
        try:
            for change in changes:
                await self.write(replace(change, fence=self.fences.get(user, 0)))
        except OrderProcessorError as refusal:
            self._restore(saved)
            raise FenceConflictException(f"the books of {user} changed since read") from refusal
        self.fences[user] = books.fence + len(changes)

    def _as_read(self, books: Books, changes: Sequence[LedgerWrite]) -> bool:
        user = books.username
        if self.fences.get(user, 0) != books.fence:
            return False
        paid = {r.currency for c in changes for r in c.cash}
        if any(self.cash.get((user, c)) != books.cash.get(c) for c in paid):
            return False
        traded = {t.asset_id for c in changes for t in c.assets}
        if any(self.holdings.get((user, a)) != books.holdings.get(a) for a in traded):
            return False
        written = {c.order.order_id for c in changes if c.order is not None}
        return all(self.orders.get(o) == books.orders.get(o) for o in written)

    def _saved(self) -> tuple[dict[str, object], ...]:
        return tuple(dict(getattr(self, name)) for name in _STATE)

    def _restore(self, saved: tuple[dict[str, object], ...]) -> None:
        for name, values in zip(_STATE, saved, strict=True):
            state = getattr(self, name)
            state.clear()
            state.update(values)

    async def write(self, change: LedgerWrite) -> None:
        """Refuses as DynamoLedger does (the contract: tests/contracts/ledger.py): a moved
        fence, a changed order or price first, then a record of the step that exists
        already, then the user's and the money's rules."""
        user = change.username
        if change.fence is not None and self.fences.get(user, 0) != change.fence:
            raise FenceConflictException(f"the books of {user} changed since read")
        self._check_order(change)
        self._check_price(change)
        self._check_records(change)
        if change.active_user:
            profile = self.users.get(user)
            if profile is None:
                raise UserNotFoundException(f"user {user} does not exist")
            if not profile.is_active:
                raise InactiveUserException(f"user {user} is disabled")
        cash = self._cash_after(change)
        holdings = self._holdings_after(change)
        self._check_daily(change)
        self.fences[user] = self.fences.get(user, 0) + 1
        if change.order is not None:
            self.orders[change.order.order_id] = change.order
        self.cash |= cash
        self.holdings |= holdings
        for record in change.cash:
            self.cash_records[(user, record.transaction_id)] = BalanceTransaction(
                **record.model_dump(), created_at=change.at, updated_at=change.at
            )
            if record.transaction_type.is_conversion:
                self.liquidity[(user, record.currency)] = exact_total(
                    [self.liquidity[(user, record.currency)], -record.available_delta]
                )
        for trade in change.assets:
            self.asset_records[(user, trade.transaction_id)] = trade
        if change.daily is not None:
            record = change.daily.record
            self.daily[(user, counted(record), change.at.date().isoformat())] += record.amount
        self.writes.append(change)

    def _check_price(self, change: LedgerWrite) -> None:
        if change.price_read is None:
            return
        asset_id, command_id = change.price_read
        asset = self.assets.get(asset_id)
        if asset is None or asset.price_command_id != command_id:
            raise OrderChangedException("the price changed since it was read")

    def _check_records(self, change: LedgerWrite) -> None:
        user = change.username
        if any((user, r.transaction_id) in self.cash_records for r in change.cash):
            raise EntityAlreadyExistsException("a transaction of this step exists already")
        if any((user, t.transaction_id) in self.asset_records for t in change.assets):
            raise EntityAlreadyExistsException("an asset transaction of this step exists")

    def _check_order(self, change: LedgerWrite) -> None:
        if change.order is None:
            return
        stored = self.orders.get(change.order.order_id)
        if change.replaces is None and stored is not None:
            raise OrderChangedException("the order exists already")
        if change.replaces is not None and (
            stored is None
            or (stored.status, stored.sequence)
            != (change.replaces.status, change.replaces.sequence)
        ):
            raise OrderChangedException("the order changed since it was read")

    def _cash_after(self, change: LedgerWrite) -> dict[tuple[str, str], Pair]:
        """Each currency's balance after the change's records in it; a base-currency
        balance must exist (every user has one), another opens with its first credit."""
        user = change.username
        after: dict[tuple[str, str], Pair] = {}
        for currency in dict.fromkeys(r.currency for r in change.cash):
            records = [r for r in change.cash if r.currency == currency]
            key = (user, currency)
            if key not in self.cash and currency == BASE_CURRENCY:
                raise BalanceNotFoundException(f"user {user} has no balance")
            available, held = self.cash.get(key, (Decimal(0), Decimal(0)))
            # Each record in turn must find enough, as the store's condition says.
            if deepest_dip(r.available_delta for r in records) > available or (
                deepest_dip(r.held_delta for r in records) > held
            ):
                raise InsufficientBalanceException(f"{user} has too little {currency} available")
            after[key] = (
                exact_total([available, *(r.available_delta for r in records)]),
                exact_total([held, *(r.held_delta for r in records)]),
            )
        return after

    def _holdings_after(self, change: LedgerWrite) -> dict[tuple[str, str], Pair]:
        after: dict[tuple[str, str], Pair] = {}
        for trade in change.assets:
            key = (change.username, trade.asset_id)
            available, held = after.get(key, self.holdings.get(key, (Decimal(0), Decimal(0))))
            after[key] = (
                exact_total([available, trade.available_delta]),
                exact_total([held, trade.held_delta]),
            )
        if any(min(pair) < 0 for pair in after.values()):
            raise InsufficientAssetBalanceException("too little of the asset")
        return after

    def _check_daily(self, change: LedgerWrite) -> None:
        if change.daily is None:
            return
        record = change.daily.record
        key = (change.username, counted(record), change.at.date().isoformat())
        if self.daily[key] + record.amount > change.daily.limit:
            raise LimitExceededException("the daily limit would be passed")


_STATE = (
    "fences",
    "orders",
    "cash",
    "holdings",
    "cash_records",
    "asset_records",
    "daily",
    "liquidity",
)
