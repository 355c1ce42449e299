"""OrderDAO: one item per order, a newest-first index per user, status changes checked
by a condition built from the transition table; the book's queries and trail moves are
inherited from `DynamoOrderBook` (store/book.py), the item's shape is `store/items.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from order_processor.domain.assets import normalise_asset_id
from order_processor.domain.orders import (
    Order,
    OrderStatus,
    OrderUpdate,
    check_transition,
    sources_of,
)
from order_processor.domain.users import normalise_username
from order_processor.exceptions import (
    EntityAlreadyExistsException,
    InvalidTransitionException,
    OrderNotFoundException,
)
from order_processor.store import keys
from order_processor.store.book import DynamoOrderBook
from order_processor.store.dynamo import (
    Page,
    all_items,
    call,
    get_item,
    is_condition_failure,
    old_item,
    query_page,
    to_attribute,
)
from order_processor.store.items import order_fields, order_item, transition_put


@dataclass(frozen=True)
class OrderDAO(DynamoOrderBook):
    async def create_order(self, order: Order) -> Order:
        """Conditional on absence; a second create raises with the stored order attached
        (`existing`), so a caller can tell a duplicate from a conflicting reuse of an id."""
        try:
            await call(
                self.client,
                "put_item",
                TableName=self.table,
                Item=order_item(order),
                ConditionExpression="attribute_not_exists(PK)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                stored = old_item(exc)
                raise EntityAlreadyExistsException(
                    f"order {order.order_id} already exists",
                    existing=order_fields(stored) if stored else None,
                ) from exc
            raise
        return order

    async def get_order(self, order_id: str, *, username: str | None = None) -> Order:
        """With `username`, another user's order is reported as not found (no leak)."""
        item = await get_item(self.client, self.table, keys.order_key(order_id))
        order = Order.model_validate(order_fields(item)) if item else None
        if order is None or (username and order.username != normalise_username(username)):
            raise OrderNotFoundException(f"order {order_id} not found", order_id=order_id)
        return order

    async def update_order(self, order_id: str, update: OrderUpdate) -> Order:
        """Field changes; a status among them is checked like update_order_status."""
        current = await self.get_order(order_id)
        changes = update.model_dump(exclude_none=True)
        status = changes.pop("status", None)
        if status is not None:
            check_transition(current.status, status)
            current = await self.update_order_status(order_id, status, **changes)
            return current
        updated = current.evolve(**changes, sequence=current.sequence + 1, updated_at=self.clock())
        return await self._write_change(current, updated, guard_status=current.status)

    async def update_order_status(
        self, order_id: str, status: OrderStatus, **changes: Any
    ) -> Order:
        """Move to `status` if the stored status allows it (the condition lists every
        allowed source); the sequence rises by one and the index attributes follow."""
        current = await self.get_order(order_id)
        check_transition(current.status, status)
        updated = current.evolve(
            **changes, status=status, sequence=current.sequence + 1, updated_at=self.clock()
        )
        return await self._write_change(current, updated, guard_status=None)

    async def _write_change(
        self, current: Order, updated: Order, guard_status: OrderStatus | None
    ) -> Order:
        allowed = sources_of(updated.status) if guard_status is None else {guard_status}
        try:
            await call(
                self.client, "put_item", **transition_put(self.table, current, updated, allowed)
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                stored = old_item(exc)
                if stored is None:
                    raise OrderNotFoundException(f"order {current.order_id} not found") from exc
                raise InvalidTransitionException(
                    f"order {current.order_id} changed concurrently "
                    f"(now {stored.get('status')}); {updated.status} refused",
                ) from exc
            raise
        return updated

    async def changed_since(self, moment: datetime) -> list[Order]:
        """Every order changed at or after `moment`: a Scan, for an operator's repair (the
        events of orders whose command was lost), never for the workers."""
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "SK = :order AND updated_at >= :moment",
            "ExpressionAttributeValues": {
                ":order": to_attribute(keys.ORDER),
                ":moment": to_attribute(moment.astimezone(UTC)),
            },
        }
        return [
            Order.model_validate(order_fields(item))
            async for item in all_items(self.client, "scan", arguments)
        ]

    async def final_orders(self) -> AsyncIterator[Order]:
        """Every order in a final status, page by page: a Scan, for the analytics rebuild
        (an operator's command), never for the workers."""
        finals = sorted(s.value for s in OrderStatus if s.is_terminal)
        names = {f":final{i}": to_attribute(s) for i, s in enumerate(finals)}
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": f"SK = :order AND #status IN ({', '.join(names)})",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":order": to_attribute(keys.ORDER), **names},
            "ConsistentRead": True,  # an order that just ended is in the rebuild
        }
        async for item in all_items(self.client, "scan", arguments):
            yield Order.model_validate(order_fields(item))

    async def get_orders_by_user(
        self, username: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Order]:
        return await self._user_orders(username, limit, cursor, keep=None)

    async def get_orders_by_user_and_asset(
        self, username: str, asset_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Order]:
        wanted = normalise_asset_id(asset_id)
        return await self._user_orders(
            username, limit, cursor, keep=lambda item: item.get("asset_id") == wanted
        )

    async def get_orders_by_user_and_status(
        self, username: str, status: OrderStatus, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Order]:
        return await self._user_orders(
            username, limit, cursor, keep=lambda item: item.get("status") == status.value
        )

    async def _user_orders(
        self,
        username: str,
        limit: int,
        cursor: str | None,
        keep: Callable[[dict[str, Any]], bool] | None,
    ) -> Page[Order]:
        """Newest first by creation time through UserOrdersIndex."""
        request = {
            "TableName": self.table,
            "IndexName": "UserOrdersIndex",
            "KeyConditionExpression": "username = :username",
            "ExpressionAttributeValues": {":username": to_attribute(normalise_username(username))},
            "ScanIndexForward": False,
        }
        page = await query_page(
            self.client,
            request,
            limit=limit,
            cursor=cursor,
            key_attributes=("PK", "SK", "username", "created_key"),
            keep=keep,
        )
        return Page([Order.model_validate(order_fields(i)) for i in page.items], page.next_cursor)
