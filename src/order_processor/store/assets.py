"""AssetDAO: the inventory of tradable assets and their prices."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from order_processor.domain.assets import (
    Asset,
    AssetCreate,
    AssetListResponse,
    AssetUpdate,
    normalise_asset_id,
)
from order_processor.domain.base import new_id, utc_now
from order_processor.domain.money import PRICE_PLACES, parse_decimal
from order_processor.domain.ports import PriceChange
from order_processor.exceptions import (
    AssetNotFoundException,
    EntityAlreadyExistsException,
    StalePriceException,
)
from order_processor.store import keys
from order_processor.store.dynamo import (
    all_items,
    call,
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


@dataclass(frozen=True)
class AssetDAO:
    client: DynamoDBClient
    table: str
    clock: Callable[[], datetime] = utc_now
    # The clock skew admission allows: a stored observation more than twice this ahead of
    # this writer's clock holds back nothing (a laptop's clock far ahead must not freeze
    # the price).
    clock_skew: timedelta = timedelta(seconds=30)

    async def create_asset(self, request: AssetCreate) -> Asset:
        now = self.clock()
        # Listed with its price observed now: an update observed before the listing (one
        # sent again after it was refused UNKNOWN_ASSET) never replaces it.
        asset = Asset(**request.model_dump(), price_as_of=now, created_at=now, updated_at=now)
        try:
            await call(
                self.client,
                "put_item",
                TableName=self.table,
                Item={**keys.asset_key(asset.asset_id), **entity_item(asset)},
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise EntityAlreadyExistsException(
                    f"asset {asset.asset_id} already exists"
                ) from exc
            raise
        return asset

    async def get_asset(self, asset_id: str) -> Asset:
        asset_id = normalise_asset_id(asset_id)
        item = await get_item(self.client, self.table, keys.asset_key(asset_id))
        if item is None:
            raise AssetNotFoundException(f"asset {asset_id} not found", asset_id=asset_id)
        return Asset.model_validate(without_keys(item))

    async def get_assets(
        self, *, limit: int = 100, cursor: str | None = None, active_only: bool = False
    ) -> AssetListResponse:
        """Ordered by asset id (one partition holds the whole inventory)."""
        request = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": to_attribute(keys.INVENTORY)},
        }
        keep = (lambda item: bool(item.get("is_active"))) if active_only else None
        page = await query_page(
            self.client, request, limit=limit, cursor=cursor, key_attributes=("PK", "SK"), keep=keep
        )
        return AssetListResponse(
            assets=[Asset.model_validate(without_keys(i)) for i in page.items],
            next_cursor=page.next_cursor,
        )

    async def every_asset(self, *, active_only: bool = False) -> AsyncIterator[Asset]:
        """The whole inventory, page after page."""
        async for item in all_items(self.client, "query", self._inventory_query(active_only)):
            yield Asset.model_validate(without_keys(item))

    def _inventory_query(self, active_only: bool) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": to_attribute(keys.INVENTORY)},
        }
        if active_only:
            request["FilterExpression"] = "is_active = :yes"
            request["ExpressionAttributeValues"][":yes"] = to_attribute(True)
        return request

    async def update_asset(self, asset_id: str, update: AssetUpdate) -> Asset:
        return await self._set(asset_id, update.model_dump(exclude_none=True))

    async def activate_asset(self, asset_id: str) -> Asset:
        return await self._set(asset_id, {"is_active": True})

    async def deactivate_asset(self, asset_id: str) -> Asset:
        return await self._set(asset_id, {"is_active": False})

    async def update_price(
        self,
        asset_id: str,
        price: Decimal | str,
        *,
        as_of: datetime | None = None,
        command_id: str | None = None,
    ) -> Asset:
        """The asset as `change_price` leaves it."""
        change = await self.change_price(asset_id, price, as_of=as_of, command_id=command_id)
        return change.after

    async def change_price(
        self,
        asset_id: str,
        price: Decimal | str,
        *,
        as_of: datetime | None = None,
        command_id: str | None = None,
    ) -> PriceChange:
        """Decimal or a decimal string only: a float is refused, never converted. `as_of`
        is when the price was observed (default: now) and `command_id` the update that
        observed it (default: a new id, a price set by hand): only a newer observation
        than the stored one is written, else StalePriceException, so neither an
        out-of-order update nor a copy of one ever moves the price back."""
        checked = parse_decimal(price, field="price", places=PRICE_PLACES)
        observed = {
            "price": checked,
            "price_as_of": self.clock() if as_of is None else as_of,
            "price_command_id": new_id() if command_id is None else command_id,
        }
        # Equal counts as current for the same command only: its redelivery (a matcher
        # that crashed after writing the price) must still reach the matching; another
        # update of the same instant is not newer.
        newer = (
            "(attribute_not_exists(price_as_of) OR price_as_of < :price_as_of"
            " OR (price_as_of = :price_as_of AND price_command_id = :price_command_id)"
            " OR price_as_of > :beyond_skew)"
        )
        # Twice the skew: admission lets an update lie one skew ahead of the matcher that
        # admits it, and matchers' clocks may differ by up to one more; only an
        # observation beyond both (a laptop's clock far ahead) is disregarded.
        beyond_skew = {":beyond_skew": to_attribute(self.clock() + 2 * self.clock_skew)}
        # The asset as it stood before, from the write itself: no second read, and no
        # other write in between (the matcher's direction of the move depends on it).
        changes = {**observed, "updated_at": self.clock()}
        stored = await self._write(asset_id, changes, newer, beyond_skew, returning="ALL_OLD")
        before = _asset(stored)
        return PriceChange(before, Asset.model_validate({**before.model_dump(), **changes}))

    async def _set(self, asset_id: str, changes: dict[str, Any]) -> Asset:
        return _asset(await self._write(asset_id, {**changes, "updated_at": self.clock()}))

    async def _write(
        self,
        asset_id: str,
        changes: dict[str, Any],
        extra_condition: str | None = None,
        extra_values: dict[str, Any] | None = None,
        returning: str = "ALL_NEW",
    ) -> dict[str, Any]:
        """The asset's item as `returning` asks (ALL_NEW: as written; ALL_OLD: before)."""
        asset_id = normalise_asset_id(asset_id)
        try:
            response = await call(
                self.client,
                "update_item",
                TableName=self.table,
                Key=keys.asset_key(asset_id),
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in changes),
                ConditionExpression=" AND ".join(
                    ["attribute_exists(PK)", *([extra_condition] if extra_condition else [])]
                ),
                ExpressionAttributeNames={f"#{k}": k for k in changes},
                ExpressionAttributeValues={
                    **{f":{k}": to_attribute(v) for k, v in changes.items()},
                    **(extra_values or {}),
                },
                ReturnValues=returning,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                stored = old_item(exc)
                if stored is None:
                    raise AssetNotFoundException(f"asset {asset_id} not found") from exc
                raise StalePriceException(
                    f"a newer price of {asset_id} is stored",
                    current=Asset.model_validate(without_keys(stored)),
                ) from exc
            raise
        return cast(dict[str, Any], response["Attributes"])


def _asset(item: dict[str, Any]) -> Asset:
    return Asset.model_validate(without_keys(from_item(item)))
