"""DynamoLedger: the saga's `Ledger` port over DynamoDB.

`read` is one BatchGetItem (strongly consistent) of the user's lock item and whichever of
the user's profile, the order, the asset and a funds record are asked for.

`write` is one TransactWriteItems. Its items come in a fixed order, because the
cancellation reasons come back in the same order and that is how a refusal is named:
the fence (the lock item: its token must still be the one read, no lease may hold it, and
the token moves on), the order (conditioned on its absence or on the status and sequence
it replaces), the USD balance (a debit conditioned on `available`/`held`) and its records
(each conditioned on its absence), each asset balance and its records, the day's total.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.awserrors import CONFLICT, cancellation_codes
from order_processor.domain.assets import Asset, AssetTransaction, normalise_asset_id
from order_processor.domain.balances import BalanceTransaction, BalanceTransactionCreate
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.fx import ExchangeRate
from order_processor.domain.money import exact_total
from order_processor.domain.orders import Order
from order_processor.domain.ports import (
    MAX_WRITE_ITEMS,
    Books,
    LedgerWrite,
    Pair,
    Snapshot,
    Wanted,
    day_key,
    items_touched,
)
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
    ServiceUnavailableException,
    UserNotFoundException,
)
from order_processor.store import keys
from order_processor.store.asset_balances import asset_balance_change, asset_transaction_put
from order_processor.store.balances import (
    balance_change,
    daily_total_change,
    liquidity_change,
    transaction_put,
)
from order_processor.store.dynamo import (
    call,
    cancellation_item,
    from_item,
    to_attribute,
    without_keys,
)
from order_processor.store.fence import IDLE_LOCK_TTL
from order_processor.store.items import order_item, order_of, transition_put

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

Part = tuple[str, dict[str, Any]]
BATCH_GET_KEYS = 100  # BatchGetItem's most
# No lease holds the user: none was ever taken (v2 takes none), or it has run out. An
# operator can still freeze a user's books by setting `owner` with a long lease.
UNLEASED = "(attribute_not_exists(#owner) OR lease_expires <= :now)"
NEVER_WRITTEN = "attribute_not_exists(fencing_token)"


@dataclass(frozen=True)
class DynamoLedger:
    client: DynamoDBClient
    users_table: str
    orders_table: str
    inventory_table: str

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
        wanted: dict[str, list[dict[str, Any]]] = defaultdict(list)
        wanted[self.users_table].append(keys.lock_key(username))
        if with_user:
            wanted[self.users_table].append(keys.user_key(username))
        if funds_id is not None:
            wanted[self.users_table].append(keys.transaction_key(username, funds_id))
        if order_id is not None:
            wanted[self.orders_table].append(keys.order_key(order_id))
        if asset_id is not None:
            wanted[self.inventory_table].append(keys.asset_key(normalise_asset_id(asset_id)))
        for currency in sorted(set(currencies) - {BASE_CURRENCY}):
            wanted[self.inventory_table].append(keys.rate_key(currency))
        items = await self._batch_get(wanted)
        return _snapshot(username, items)

    async def read_books(self, username: str, wanted: Wanted) -> Books:
        """One BatchGetItem (two beyond 100 keys): the lock, profile and base-currency
        balance, each order, each asset with the user's holding of it, each funds record,
        each day's count, each other currency's balance and rate."""
        others = sorted(wanted.currencies - {BASE_CURRENCY})
        users = [keys.lock_key(username), keys.user_key(username), keys.balance_key(username)]
        users += [keys.balance_key(username, c) for c in others]
        users += [keys.asset_balance_key(username, a) for a in sorted(wanted.asset_ids)]
        users += [keys.transaction_key(username, f) for f in sorted(wanted.funds_ids)]
        users += [keys.daily_total_key(username, kind, day) for kind, day in sorted(wanted.days)]
        every = [(self.users_table, key) for key in users]
        every += [(self.orders_table, keys.order_key(o)) for o in sorted(wanted.order_ids)]
        every += [(self.inventory_table, keys.asset_key(a)) for a in sorted(wanted.asset_ids)]
        every += [(self.inventory_table, keys.rate_key(c)) for c in others]
        items: dict[str, Any] = {}
        for start in range(0, len(every), BATCH_GET_KEYS):
            asked: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for table, key in every[start : start + BATCH_GET_KEYS]:
                asked[table].append(key)
            items |= await self._batch_get(asked)
        return _books(username, wanted, items)

    async def write_together(self, books: Books, changes: Sequence[LedgerWrite]) -> None:
        if items_touched(changes) > MAX_WRITE_ITEMS:
            raise ValueError(f"{len(changes)} changes touch more than {MAX_WRITE_ITEMS} items")
        parts = self._together(books, changes)
        try:
            await call(self.client, "transact_write_items", TransactItems=parts)
        except ClientError as exc:
            if cancellation_codes(exc):
                user = books.username
                raise FenceConflictException(f"the books of {user} changed since read") from exc
            raise
        except ServiceUnavailableException as exc:
            if isinstance(exc.__cause__, ClientError) and CONFLICT in cancellation_codes(
                exc.__cause__
            ):
                user = books.username
                raise FenceConflictException(f"another write of {user} was in flight") from exc
            raise

    def _together(self, books: Books, changes: Sequence[LedgerWrite]) -> list[dict[str, Any]]:
        """The parts of one TransactWriteItems (one per item): each conditioned on the
        item as `books` read it."""
        user, last = books.username, max(c.at for c in changes)
        fence = self._fence(user, books.fence, last, moves=len(changes))
        parts: list[dict[str, Any]] = [{"Update": fence}]
        if any(c.active_user for c in changes):
            parts.append({"ConditionCheck": self._active(user)})
        finals = {c.order.order_id: c.order for c in changes if c.order is not None}
        for order_id, order in finals.items():
            parts.append({"Put": self._order_put(order, books.orders.get(order_id))})
        parts += self._cash_together(books, changes, last)
        trades: dict[str, list[AssetTransaction]] = defaultdict(list)
        for trade in (t for c in changes for t in c.assets):
            trades[trade.asset_id].append(trade)
        for asset_id, mine in trades.items():
            available = exact_total(t.available_delta for t in mine)
            held = exact_total(t.held_delta for t in mine)
            update = asset_balance_change(
                self.users_table, user, asset_id, available, last, held_delta=held
            )
            parts.append({"Update": _as_read(update, books.holdings.get(asset_id))})
            parts += [{"Put": asset_transaction_put(self.users_table, t)} for t in mine]
        counts: dict[tuple[str, str], list[LedgerWrite]] = defaultdict(list)
        for counted_change in (c for c in changes if c.daily is not None):
            counts[day_key(counted_change)].append(counted_change)
        for counted in counts.values():
            daily = [c.daily for c in counted if c.daily is not None]
            summed = daily[0].record.model_copy(
                update={"amount": exact_total(d.record.amount for d in daily)}
            )
            count = daily_total_change(self.users_table, summed, daily[0].limit, counted[0].at)
            parts.append({"Update": count})
        prices = {c.price_read[0]: c.price_read for c in changes if c.price_read is not None}
        parts += [{"ConditionCheck": self._price_unchanged(*read)} for read in prices.values()]
        return parts

    def _cash_together(
        self, books: Books, changes: Sequence[LedgerWrite], last: datetime
    ) -> list[dict[str, Any]]:
        """Each currency's balance by its summed deltas (conditioned on its amounts as
        read), its records, and the exchange's liquidity moved by its conversions."""
        cash: dict[str, list[tuple[BalanceTransactionCreate, datetime]]] = defaultdict(list)
        for change in changes:
            for record in change.cash:
                cash[record.currency].append((record, change.at))
        parts: list[dict[str, Any]] = []
        for currency, dated in cash.items():
            records = [r for r, _ in dated]
            paid = balance_change(self.users_table, records, last)
            parts.append({"Update": _as_read(paid, books.cash.get(currency))})
            parts += [{"Put": transaction_put(self.users_table, r, at)} for r, at in dated]
            liquidity = liquidity_change(self.users_table, books.username, records, last)
            if liquidity is not None:
                parts.append({"Update": liquidity})
        return parts

    async def _batch_get(self, wanted: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """Every item, by "PK|SK"; unprocessed keys (throttling) asked for again."""
        request = {t: {"Keys": k, "ConsistentRead": True} for t, k in wanted.items()}
        found: dict[str, Any] = {}
        for attempt in range(8):
            response = await call(self.client, "batch_get_item", RequestItems=request)
            for table_items in response.get("Responses", {}).values():
                for raw in table_items:
                    item = from_item(raw)
                    found[f"{item['PK']}|{item['SK']}"] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
            await asyncio.sleep(0.05 * 2**attempt)
        raise ServiceUnavailableException("DynamoDB left keys of the read unprocessed too long")

    async def write(self, change: LedgerWrite) -> None:
        parts = self._parts(change)
        try:
            await call(
                self.client, "transact_write_items", TransactItems=[item for _, item in parts]
            )
        except ClientError as exc:
            raise _refusal(exc, [name for name, _ in parts], change) from exc
        except ServiceUnavailableException as exc:
            if isinstance(exc.__cause__, ClientError) and CONFLICT in cancellation_codes(
                exc.__cause__
            ):
                # Another transaction of this user's books was in flight (AWS cancels
                # rather than queues): the same as a moved fence, decided again from a
                # fresh read in-process, not handed back to the queue.
                user = change.username
                raise FenceConflictException(f"another write of {user} was in flight") from exc
            raise

    def _parts(self, change: LedgerWrite) -> list[Part]:
        fence = self._fence(change.username, change.fence, change.at)
        parts: list[Part] = [("lock", {"Update": fence})]
        if change.active_user:
            parts.append(("user", {"ConditionCheck": self._active(change.username)}))
        if change.order is not None:
            parts.append(("order", {"Put": self._order_put(change.order, change.replaces)}))
        cash: dict[str, list[BalanceTransactionCreate]] = defaultdict(list)
        for record in change.cash:
            cash[record.currency].append(record)
        for currency, records in cash.items():
            paid = balance_change(self.users_table, records, change.at)
            # A base-currency balance every user has; another opens with its first credit.
            name = "balance" if currency == BASE_CURRENCY else "other_balance"
            parts.append((name, {"Update": paid}))
            parts += [
                ("transaction", {"Put": transaction_put(self.users_table, r, change.at)})
                for r in records
            ]
            liquidity = liquidity_change(self.users_table, change.username, records, change.at)
            if liquidity is not None:
                parts.append(("liquidity", {"Update": liquidity}))
        parts += self._asset_parts(change.assets, change.at)
        if change.daily is not None:
            count = daily_total_change(
                self.users_table, change.daily.record, change.daily.limit, change.at
            )
            parts.append(("limit", {"Update": count}))
        if change.price_read is not None:
            parts.append(("price", {"ConditionCheck": self._price_unchanged(*change.price_read)}))
        return parts

    def _price_unchanged(self, asset_id: str, command_id: str | None) -> dict[str, Any]:
        """The inventory's price is still the one set by the update read (or, for a price
        never set by one, still none)."""
        check: dict[str, Any] = {
            "TableName": self.inventory_table,
            "Key": keys.asset_key(asset_id),
        }
        if command_id is None:
            check["ConditionExpression"] = "attribute_not_exists(price_command_id)"
        else:
            check["ConditionExpression"] = "price_command_id = :read"
            check["ExpressionAttributeValues"] = {":read": to_attribute(command_id)}
        return check

    def _fence(
        self, username: str, read: int | None, at: datetime, moves: int = 1
    ) -> dict[str, Any]:
        """The lock taken and released in the write itself: the token `read` is still there
        (absent: never written), no lease holds the user, and the token moves on (by one a
        change: a batch written together moves it as far as its changes would alone). A
        write decided from nothing read (`read` None) only moves it."""
        values: dict[str, Any] = {
            ":now": int(at.timestamp() * 1000),  # lease times are epoch milliseconds
            ":ttl": int((at + IDLE_LOCK_TTL).timestamp()),
        }
        if read is None:
            condition, update = UNLEASED, "ADD fencing_token :one SET #ttl = :ttl"
            values[":one"] = 1
        else:
            same = "fencing_token = :fence" if read else "attribute_not_exists(fencing_token)"
            condition, update = f"{same} AND {UNLEASED}", "SET fencing_token = :next, #ttl = :ttl"
            values[":next"] = read + moves
            if read:
                values[":fence"] = read
        return {
            "TableName": self.users_table,
            "Key": keys.lock_key(username),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#owner": "owner", "#ttl": "ttl"},
            "ExpressionAttributeValues": {k: to_attribute(v) for k, v in values.items()},
        }

    def _active(self, username: str) -> dict[str, Any]:
        return {
            "TableName": self.users_table,
            "Key": keys.user_key(username),
            "ConditionExpression": "is_active = :yes",
            "ExpressionAttributeValues": {":yes": to_attribute(True)},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _order_put(self, order: Order, replaces: Order | None) -> dict[str, Any]:
        if replaces is None:
            return {
                "TableName": self.orders_table,
                "Item": order_item(order),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        return transition_put(self.orders_table, replaces, order, {replaces.status})

    def _asset_parts(self, records: tuple[AssetTransaction, ...], at: datetime) -> list[Part]:
        by_asset: dict[str, list[AssetTransaction]] = defaultdict(list)
        for record in records:
            by_asset[record.asset_id].append(record)
        parts: list[Part] = []
        for asset_id, mine in by_asset.items():
            available = exact_total(r.available_delta for r in mine)
            held = exact_total(r.held_delta for r in mine)
            change = asset_balance_change(
                self.users_table, mine[0].username, asset_id, available, at, held_delta=held
            )
            parts.append(("asset_balance", {"Update": change}))
            parts += [
                ("asset_transaction", {"Put": asset_transaction_put(self.users_table, r)})
                for r in mine
            ]
        return parts


def _as_read(update: dict[str, Any], read: Pair | None) -> dict[str, Any]:
    """A balance's Update conditioned on its amounts being still those read (or on its
    absence): what every command of the batch was decided from, whoever else may write
    it (the common package's DAOs move no fence)."""
    values = {
        name: value
        for name, value in update["ExpressionAttributeValues"].items()
        if not name.startswith(":need")  # the conditions replaced: "enough for the debit"
    }
    update = {**update, "ExpressionAttributeValues": values}
    if read is None:
        update["ConditionExpression"] = "attribute_not_exists(PK)"
        return update
    update["ConditionExpression"] = "available = :read_available AND held = :read_held"
    update["ExpressionAttributeValues"][":read_available"] = to_attribute(read[0])
    update["ExpressionAttributeValues"][":read_held"] = to_attribute(read[1])
    return update


def _books(username: str, wanted: Wanted, items: dict[str, Any]) -> Books:
    user = None
    fence = 0
    cash: dict[str, Pair] = {}
    rates: dict[str, ExchangeRate] = {}
    holdings: dict[str, Pair] = {}
    orders: dict[str, Order] = {}
    assets: dict[str, Asset] = {}
    funds: dict[str, BalanceTransaction] = {}
    daily: dict[tuple[str, str], Decimal] = {}
    for key, item in items.items():
        sk = str(item["SK"])
        if key.startswith((keys.INVENTORY, keys.RATES)):
            _inventory_item(key, item, assets, rates)
        elif sk == keys.LOCK:
            fence = int(item.get("fencing_token", 0))
        elif sk == keys.PROFILE:
            user = User.model_validate(without_keys(item))
        elif sk.startswith((keys.BALANCE_PREFIX, keys.ASSET_BALANCE_PREFIX)):
            pair = (Decimal(item["available"]), Decimal(item["held"]))
            if sk.startswith(keys.BALANCE_PREFIX):
                cash[sk.removeprefix(keys.BALANCE_PREFIX)] = pair
            else:
                holdings[sk.removeprefix(keys.ASSET_BALANCE_PREFIX)] = pair
        elif sk == keys.ORDER:
            order = order_of(item)
            orders[order.order_id] = order
        elif sk.startswith(keys.TRANSACTION_PREFIX):
            record = BalanceTransaction.model_validate(without_keys(item))
            funds[record.transaction_id] = record
        elif sk.startswith(keys.DAILY_TOTAL_PREFIX):
            kind, _, day = sk.removeprefix(keys.DAILY_TOTAL_PREFIX).rpartition("#")
            daily[(kind, day)] = Decimal(item["total"])
    return Books(username, fence, wanted, user, cash, holdings, orders, assets, funds, daily, rates)


def _inventory_item(
    key: str, item: dict[str, Any], assets: dict[str, Asset], rates: dict[str, ExchangeRate]
) -> None:
    if key.startswith(keys.INVENTORY):
        asset = Asset.model_validate(without_keys(item))
        assets[asset.asset_id] = asset
    else:
        rate = ExchangeRate.model_validate(without_keys(item))
        rates[rate.currency] = rate


def _snapshot(username: str, items: dict[str, Any]) -> Snapshot:
    lock = order = user = asset = funds = None
    rates: dict[str, ExchangeRate] = {}
    for key, item in items.items():
        sk = str(item["SK"])
        if sk == keys.LOCK:
            lock = item
        elif sk == keys.PROFILE:
            user = User.model_validate(without_keys(item))
        elif sk == "ORDER":
            order = order_of(item)
        elif sk.startswith(keys.TRANSACTION_PREFIX):
            funds = BalanceTransaction.model_validate(without_keys(item))
        elif key.startswith(keys.INVENTORY):
            asset = Asset.model_validate(without_keys(item))
        elif key.startswith(keys.RATES):
            rate = ExchangeRate.model_validate(without_keys(item))
            rates[rate.currency] = rate
    fence = int(lock.get("fencing_token", 0)) if lock else 0
    return Snapshot(username, fence, order, user, asset, funds, rates)


_CONDITIONS = frozenset(
    {"lock", "user", "order", "balance", "other_balance", "asset_balance", "limit", "price"}
)
"""The parts whose condition guards the write; every other part is a record put only where
it is absent."""
_REREAD = frozenset({"lock", "order", "price"})


def _refusal(exc: ClientError, names: list[str], change: LedgerWrite) -> Exception:
    """The item whose condition refused the write, as the domain's exception. A moved
    fence, a changed order or a changed price comes first, wherever its item stands (the
    price's is last, the user's goes before the order's): each is decided again from a
    fresh read, which sees what is stored. Then a record of the step that exists already,
    before the user's and the money's conditions (the step was applied: a blind
    redelivery must be answered from what is stored, not refused for a balance spent or a
    user disabled since). Then the first refusal in item order."""
    unchanged: Exception = exc
    codes = cancellation_codes(exc)
    refused = [i for i, code in enumerate(codes) if code not in {"None", ""}]
    if not refused:
        return unchanged
    reread = [i for i in refused if names[i] in _REREAD]
    existing = [i for i in refused if names[i] not in _CONDITIONS]
    index = (reread or existing or refused)[0]
    part, stored = names[index], cancellation_item(exc, index)
    user = change.username
    refusals: dict[str, Callable[[], Exception]] = {
        "lock": lambda: FenceConflictException(f"the books of {user} changed since read"),
        "user": lambda: (
            InactiveUserException(f"user {user} is disabled")
            if stored
            else UserNotFoundException(f"user {user} does not exist")
        ),
        "order": lambda: OrderChangedException("the order changed since it was read"),
        "price": lambda: OrderChangedException("the price changed since it was read"),
        "balance": lambda: (
            InsufficientBalanceException(f"{user} has too little {BASE_CURRENCY} available")
            if stored
            else BalanceNotFoundException(f"user {user} has no balance")
        ),
        "other_balance": lambda: InsufficientBalanceException(
            f"{user} has too little of the currency available"
        ),
        "asset_balance": lambda: InsufficientAssetBalanceException(
            f"{user} holds too little of the asset", username=user
        ),
        "limit": lambda: LimitExceededException("the daily limit would be passed"),
    }
    make = refusals.get(part)
    if make is None:  # a record of the step that exists already
        return EntityAlreadyExistsException(f"a {part} of this step exists already")
    return make()
