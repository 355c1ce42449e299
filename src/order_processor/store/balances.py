"""BalanceDAO: USD balances and their transactions, always written together.

A COMPLETED transaction changes the balance, so it is only ever written in the same
TransactWriteItems as that change (`update_balance`, or `update_transaction_status` to
COMPLETED). Records without an effect (PENDING, FAILED, CANCELLED) may be written alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.awserrors import cancellation_codes
from order_processor.domain.balances import (
    STATUS_TRANSITIONS,
    Balance,
    BalanceTransaction,
    BalanceTransactionCreate,
    TransactionStatus,
)
from order_processor.domain.base import utc_now
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.money import deepest_dip, exact_total
from order_processor.domain.ports import counted
from order_processor.domain.users import normalise_username
from order_processor.exceptions import (
    BalanceNotFoundException,
    EntityAlreadyExistsException,
    InsufficientBalanceException,
    InvalidTransitionException,
    TransactionNotFoundException,
)
from order_processor.store import keys
from order_processor.store.dynamo import (
    CONDITION_FAILED,
    Page,
    all_items,
    call,
    cancellation_item,
    entity_item,
    from_item,
    get_item,
    is_condition_failure,
    query_page,
    to_attribute,
    without_keys,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

ZERO = Decimal("0.00")


def balance_change(
    table: str,
    transaction: BalanceTransactionCreate | Sequence[BalanceTransactionCreate],
    now: datetime,
) -> dict[str, Any]:
    """The Update of one or more transactions' combined effect (one item may appear
    only once in a TransactWriteItems), for the DAO and for the ledger, which fuses it
    into a larger transaction. `available` and `held` are separate attributes so that "never
    negative" is a plain comparison: a condition cannot do arithmetic."""
    records = (
        [transaction] if isinstance(transaction, BalanceTransactionCreate) else list(transaction)
    )
    currency = records[0].currency
    if any(r.currency != currency for r in records):
        raise ValueError("one balance change is in one currency")
    available = exact_total(r.available_delta for r in records)
    held = exact_total(r.held_delta for r in records)
    values: dict[str, Any] = {
        ":available": to_attribute(available),
        ":held": to_attribute(held),
        ":now": to_attribute(now),
    }
    if currency == BASE_CURRENCY:
        # Every user has a base-currency balance from the start: its absence is a user
        # that does not exist (or data older than v2).
        conditions = ["attribute_exists(PK)"]
        update = "SET available = available + :available, held = held + :held, updated_at = :now"
    else:
        # Another currency's balance opens with its first credit.
        conditions = []
        update = (
            "SET available = if_not_exists(available, :zero) + :available, "
            "held = if_not_exists(held, :zero) + :held, currency = :currency, updated_at = :now"
        )
        values[":zero"] = to_attribute(Decimal(0))
        values[":currency"] = to_attribute(currency)
    # Each record in turn must find enough, not only their sum: a hold taken and
    # released in one write (a limit buy placed and executed at once) needs the whole
    # hold available, as the history it leaves says, though it nets to the payment.
    need_available = deepest_dip([r.available_delta for r in records])
    need_held = deepest_dip([r.held_delta for r in records])
    if need_available > 0:
        conditions.append("available >= :need_available")
        values[":need_available"] = to_attribute(need_available)
    if need_held > 0:
        conditions.append("held >= :need_held")
        values[":need_held"] = to_attribute(need_held)
    change: dict[str, Any] = {
        "TableName": table,
        "Key": keys.balance_key(records[0].username, currency),
        "UpdateExpression": update,
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if conditions:
        change["ConditionExpression"] = " AND ".join(conditions)
    return change


def liquidity_change(
    table: str, username: str, records: Sequence[BalanceTransactionCreate], now: datetime
) -> dict[str, Any] | None:
    """The exchange's side of a user's conversion records in their currency (one): its
    liquidity account moves opposite to the user's balance. Never conditioned: the
    exchange quotes every enabled currency, and its position in each is what the
    ledger audit and the dashboard report. None when no record is a conversion."""
    moved = exact_total(
        r.available_delta.copy_negate() for r in records if r.transaction_type.is_conversion
    )
    if not any(r.transaction_type.is_conversion for r in records):
        return None
    return {
        "TableName": table,
        "Key": keys.liquidity_key(username, records[0].currency),
        "UpdateExpression": "SET amount = if_not_exists(amount, :zero) + :moved, "
        "currency = :currency, updated_at = :now",
        "ExpressionAttributeValues": {
            ":zero": to_attribute(Decimal(0)),
            ":moved": to_attribute(moved),
            ":currency": to_attribute(records[0].currency),
            ":now": to_attribute(now),
        },
    }


def transaction_put(
    table: str, transaction: BalanceTransactionCreate, now: datetime
) -> dict[str, Any]:
    record = BalanceTransaction(**transaction.model_dump(), created_at=now, updated_at=now)
    item = entity_item(record)
    return {
        "TableName": table,
        "Item": {**keys.transaction_key(record.username, record.transaction_id), **item},
        "ConditionExpression": "attribute_not_exists(PK)",
    }


def daily_total_change(
    table: str, transaction: BalanceTransactionCreate, limit: Decimal, now: datetime
) -> dict[str, Any]:
    """Count a deposit or withdrawal against its UTC day's limit, atomically: the
    condition compares the stored total with the room left (limit - amount), computed
    here because a condition cannot add."""
    day = now.date().isoformat()
    room = limit - transaction.amount
    expires = datetime.combine(now.date(), datetime.min.time(), now.tzinfo) + timedelta(days=3)
    # With no room at all, not even the day's first count may pass.
    first = "attribute_not_exists(#total) OR " if room >= 0 else ""
    return {
        "TableName": table,
        "Key": keys.daily_total_key(transaction.username, counted(transaction), day),
        "UpdateExpression": "SET #total = if_not_exists(#total, :zero) + :amount, #ttl = :ttl",
        "ConditionExpression": f"{first}#total <= :room",
        "ExpressionAttributeNames": {"#total": "total", "#ttl": "ttl"},
        "ExpressionAttributeValues": {
            ":zero": to_attribute(ZERO),
            ":amount": to_attribute(transaction.amount),
            ":room": to_attribute(room),
            ":ttl": to_attribute(int(expires.timestamp())),
        },
    }


@dataclass(frozen=True)
class BalanceDAO:
    client: DynamoDBClient
    table: str
    clock: Callable[[], datetime] = utc_now

    async def create_balance(self, username: str) -> Balance:
        """A zero balance; money arrives only through transactions (a DEPOSIT)."""
        balance = Balance(username=username, updated_at=self.clock())
        item = {**keys.balance_key(balance.username), **entity_item(balance)}
        try:
            await call(
                self.client,
                "put_item",
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise EntityAlreadyExistsException(
                    f"user {balance.username} already has a balance"
                ) from exc
            raise
        return balance

    async def get_balance(self, username: str) -> Balance:
        name = normalise_username(username)
        item = await get_item(self.client, self.table, keys.balance_key(name))
        if item is None:
            raise BalanceNotFoundException(f"user {name} has no balance", username=name)
        return Balance.model_validate(without_keys(item))

    async def balances(self, username: str) -> list[Balance]:
        """Every currency's balance of the user, by currency code: one Query of the user's
        `BALANCE#` items (USD, opened with the user, and each currency since credited)."""
        name = normalise_username(username)
        request = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": to_attribute(keys.user_pk(name)),
                ":prefix": to_attribute(keys.BALANCE_PREFIX),
            },
            "ConsistentRead": True,
        }
        found = [
            # The key names the user and the currency: a balance opened by its first credit
            # carries neither attribute, and a USD item older than currencies no currency.
            Balance.model_validate(
                without_keys(item)
                | {"username": name, "currency": item["SK"].removeprefix(keys.BALANCE_PREFIX)}
            )
            async for item in all_items(self.client, "query", request)
        ]
        if not found:
            raise BalanceNotFoundException(f"user {name} has no balance", username=name)
        return found

    async def update_balance(self, transaction: BalanceTransactionCreate) -> Balance:
        """Apply a COMPLETED transaction: the balance change and its record, atomically."""
        if transaction.status is not TransactionStatus.COMPLETED:
            raise ValueError("only a COMPLETED transaction changes a balance")
        now = self.clock()
        await self._transact(
            [
                {"Update": balance_change(self.table, transaction, now)},
                {"Put": transaction_put(self.table, transaction, now)},
            ],
            transaction,
            second_failed="duplicate",
        )
        return await self.get_balance(transaction.username)

    async def _transact(
        self, items: list[dict[str, Any]], tx: BalanceTransactionCreate, second_failed: str
    ) -> None:
        try:
            await call(self.client, "transact_write_items", TransactItems=items)
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if codes[:1] == [CONDITION_FAILED]:
                if cancellation_item(exc, 0) is None:
                    raise BalanceNotFoundException(f"user {tx.username} has no balance") from exc
                raise InsufficientBalanceException(
                    f"insufficient funds for {tx.transaction_type} of {tx.amount} USD",
                    username=tx.username,
                ) from exc
            if codes[1:2] == [CONDITION_FAILED]:
                if second_failed == "duplicate":
                    raise EntityAlreadyExistsException(
                        f"transaction {tx.transaction_id} is already recorded"
                    ) from exc
                raise InvalidTransitionException(
                    f"transaction {tx.transaction_id} is no longer PENDING"
                ) from exc
            raise

    async def create_transaction(self, transaction: BalanceTransactionCreate) -> BalanceTransaction:
        """Record a transaction that has no effect yet (PENDING) or never will."""
        if transaction.status is TransactionStatus.COMPLETED:
            raise ValueError("a COMPLETED transaction changes the balance: use update_balance")
        now = self.clock()
        put = transaction_put(self.table, transaction, now)
        try:
            await call(self.client, "put_item", **put)
        except ClientError as exc:
            if is_condition_failure(exc):
                raise EntityAlreadyExistsException(
                    f"transaction {transaction.transaction_id} is already recorded"
                ) from exc
            raise
        return _transaction(put["Item"])

    async def get_transaction(self, username: str, transaction_id: str) -> BalanceTransaction:
        name = normalise_username(username)
        item = await get_item(self.client, self.table, keys.transaction_key(name, transaction_id))
        if item is None:
            raise TransactionNotFoundException(f"transaction {transaction_id} not found")
        return BalanceTransaction.model_validate(without_keys(item))

    async def get_user_transactions(
        self, username: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[BalanceTransaction]:
        """Newest first: transaction ids sort by creation time."""
        request = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": to_attribute(keys.user_pk(normalise_username(username))),
                ":prefix": to_attribute(keys.TRANSACTION_PREFIX),
            },
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        page = await query_page(
            self.client, request, limit=limit, cursor=cursor, key_attributes=("PK", "SK")
        )
        records = [BalanceTransaction.model_validate(without_keys(i)) for i in page.items]
        return Page(records, page.next_cursor)

    async def update_transaction_status(
        self, username: str, transaction_id: str, status: TransactionStatus
    ) -> BalanceTransaction:
        """PENDING → COMPLETED applies the effect with the status change, atomically;
        PENDING → FAILED/CANCELLED only records it. Anything else is refused."""
        current = await self.get_transaction(username, transaction_id)
        if status not in STATUS_TRANSITIONS[current.status]:
            raise InvalidTransitionException(
                f"transaction {transaction_id} cannot go from {current.status} to {status}"
            )
        now = self.clock()
        status_update = {
            "TableName": self.table,
            "Key": keys.transaction_key(current.username, transaction_id),
            "UpdateExpression": "SET #status = :status, updated_at = :now",
            "ConditionExpression": "#status = :pending",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":status": to_attribute(status),
                ":now": to_attribute(now),
                ":pending": to_attribute(TransactionStatus.PENDING),
            },
        }
        completed = current.model_copy(update={"status": status, "updated_at": now})
        if status is TransactionStatus.COMPLETED:
            effect = BalanceTransactionCreate.model_validate(
                completed.model_dump(exclude={"created_at", "updated_at"})
            )
            await self._transact(
                [{"Update": balance_change(self.table, effect, now)}, {"Update": status_update}],
                effect,
                second_failed="not pending",
            )
        else:
            await call(self.client, "update_item", **status_update)
        return completed


def _transaction(item: dict[str, Any]) -> BalanceTransaction:
    return BalanceTransaction.model_validate(without_keys(from_item(item)))
