"""AssetBalanceDAO and AssetTransactionDAO: what each user holds of each asset, and the
BUY/SELL records that move it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.awserrors import cancellation_codes
from order_processor.domain.assets import (
    AssetBalance,
    AssetTransaction,
    AssetTransactionCreate,
    AssetTransactionStatus,
    normalise_asset_id,
)
from order_processor.domain.base import utc_now
from order_processor.domain.money import MAX_QUANTITY_PLACES, parse_signed
from order_processor.domain.users import normalise_username
from order_processor.exceptions import (
    AssetBalanceNotFoundException,
    EntityAlreadyExistsException,
    InsufficientAssetBalanceException,
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
    old_item,
    query_page,
    to_attribute,
    without_keys,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


def asset_balance_change(
    table: str,
    username: str,
    asset_id: str,
    delta: Decimal,
    now: datetime,
    held_delta: Decimal = Decimal(0),
) -> dict[str, Any]:
    """Atomic ADDs to `available` and `held` that create the balance on first credit and
    can never take either below zero: a decrease is conditional on `attribute >= amount`
    (which also fails on a balance that does not exist)."""
    values = {
        ":delta": to_attribute(delta),
        ":held": to_attribute(held_delta),
        ":now": to_attribute(now),
        ":username": to_attribute(username),
        ":asset_id": to_attribute(asset_id),
    }
    conditions = []
    if delta < 0:
        conditions.append("available >= :need")
        values[":need"] = to_attribute(delta.copy_negate())
    if held_delta < 0:
        conditions.append("held >= :need_held")
        values[":need_held"] = to_attribute(held_delta.copy_negate())
    change: dict[str, Any] = {
        "TableName": table,
        "Key": keys.asset_balance_key(username, asset_id),
        "UpdateExpression": "ADD available :delta, held :held "
        "SET username = :username, asset_id = :asset_id, updated_at = :now",
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if conditions:
        change["ConditionExpression"] = " AND ".join(conditions)
    return change


def asset_transaction_put(table: str, record: AssetTransaction) -> dict[str, Any]:
    return {
        "TableName": table,
        "Item": {
            **keys.asset_transaction_key(record.username, record.transaction_id),
            **entity_item(record),
        },
        "ConditionExpression": "attribute_not_exists(PK)",
    }


def _shortfall(username: str, asset_id: str, delta: Decimal, existing: object) -> Exception:
    if existing is None:
        return AssetBalanceNotFoundException(f"user {username} holds no {asset_id}")
    return InsufficientAssetBalanceException(
        f"user {username} holds less than {-delta} {asset_id}", username=username
    )


@dataclass(frozen=True)
class AssetBalanceDAO:
    client: DynamoDBClient
    table: str
    clock: Callable[[], datetime] = utc_now

    async def upsert_asset_balance(
        self, username: str, asset_id: str, quantity_delta: Decimal | str
    ) -> AssetBalance:
        """Add (or, negative, remove) a quantity atomically. This is the raw adjustment of
        the seed; trades go through AssetTransactionDAO, which records them too."""
        delta = _signed_quantity(quantity_delta)
        name, asset = normalise_username(username), normalise_asset_id(asset_id)
        change = asset_balance_change(self.table, name, asset, delta, self.clock())
        change.pop("ReturnValuesOnConditionCheckFailure")
        try:
            response = await call(
                self.client,
                "update_item",
                **change,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise _shortfall(name, asset, delta, old_item(exc)) from exc
            raise
        return _asset_balance(response["Attributes"])

    async def get_asset_balance(self, username: str, asset_id: str) -> AssetBalance:
        name, asset = normalise_username(username), normalise_asset_id(asset_id)
        item = await get_item(self.client, self.table, keys.asset_balance_key(name, asset))
        if item is None:
            raise AssetBalanceNotFoundException(f"user {name} holds no {asset}")
        return AssetBalance.model_validate(without_keys(item))

    async def get_all_asset_balances(self, username: str) -> list[AssetBalance]:
        request = _prefix_query(self.table, username, keys.ASSET_BALANCE_PREFIX, forward=True)
        return [
            AssetBalance.model_validate(without_keys(item))
            async for item in all_items(self.client, "query", request)
        ]


@dataclass(frozen=True)
class AssetTransactionDAO:
    client: DynamoDBClient
    table: str
    clock: Callable[[], datetime] = utc_now

    async def create_asset_transaction(self, request: AssetTransactionCreate) -> AssetTransaction:
        """A COMPLETED BUY/SELL moves the asset balance in the same transaction as its
        record; other statuses are records only."""
        now = self.clock()
        record = AssetTransaction(**request.model_dump(), created_at=now)
        put = asset_transaction_put(self.table, record)
        if record.status is not AssetTransactionStatus.COMPLETED:
            await self._put(put, record)
            return record
        change = asset_balance_change(
            self.table,
            record.username,
            record.asset_id,
            record.available_delta,
            now,
            held_delta=record.held_delta,
        )
        try:
            await call(
                self.client,
                "transact_write_items",
                TransactItems=[{"Update": change}, {"Put": put}],
            )
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if codes[:1] == [CONDITION_FAILED]:
                existing = cancellation_item(exc, 0)
                raise _shortfall(
                    record.username, record.asset_id, record.quantity_delta, existing
                ) from exc
            if codes[1:2] == [CONDITION_FAILED]:
                raise _duplicate(record) from exc
            raise
        return record

    async def _put(self, put: dict[str, Any], record: AssetTransaction) -> None:
        try:
            await call(self.client, "put_item", **put)
        except ClientError as exc:
            if is_condition_failure(exc):
                raise _duplicate(record) from exc
            raise

    async def get_asset_transaction(self, username: str, transaction_id: str) -> AssetTransaction:
        name = normalise_username(username)
        key = keys.asset_transaction_key(name, transaction_id)
        item = await get_item(self.client, self.table, key)
        if item is None:
            raise TransactionNotFoundException(f"asset transaction {transaction_id} not found")
        return AssetTransaction.model_validate(without_keys(item))

    async def get_user_asset_transactions(
        self,
        username: str,
        *,
        asset_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AssetTransaction]:
        """Newest first; with `asset_id`, only that asset's (filtered while paging)."""
        wanted = normalise_asset_id(asset_id) if asset_id else None
        keep = (lambda item: item.get("asset_id") == wanted) if wanted else None
        page = await query_page(
            self.client,
            _prefix_query(self.table, username, keys.ASSET_TRANSACTION_PREFIX, forward=False),
            limit=limit,
            cursor=cursor,
            key_attributes=("PK", "SK"),
            keep=keep,
        )
        records = [AssetTransaction.model_validate(without_keys(i)) for i in page.items]
        return Page(records, page.next_cursor)


def _prefix_query(table: str, username: str, prefix: str, *, forward: bool) -> dict[str, Any]:
    return {
        "TableName": table,
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
        "ExpressionAttributeValues": {
            ":pk": to_attribute(keys.user_pk(normalise_username(username))),
            ":prefix": to_attribute(prefix),
        },
        "ScanIndexForward": forward,
        "ConsistentRead": True,
    }


def _duplicate(record: AssetTransaction) -> EntityAlreadyExistsException:
    return EntityAlreadyExistsException(
        f"asset transaction {record.transaction_id} is already recorded"
    )


def _signed_quantity(value: Decimal | str) -> Decimal:
    return parse_signed(value, field="quantity_delta", places=MAX_QUANTITY_PLACES, pad=False)


def _asset_balance(item: dict[str, Any]) -> AssetBalance:
    return AssetBalance.model_validate(without_keys(from_item(item)))
