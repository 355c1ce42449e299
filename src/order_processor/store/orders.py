"""OrderDAO: one item per order, a newest-first index per user, status changes checked
by a condition built from the transition table."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.domain.base import utc_now
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
    OrderChangedException,
    OrderNotFoundException,
)
from order_processor.store import keys
from order_processor.store.dynamo import (
    Page,
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

# Index attributes kept beside the order's own fields.
INDEX_ATTRIBUTES = (
    "created_key",
    "book_key",
    "stop_key",
    "trail_key",
    "expiry_shard",
    "in_flight_shard",
)
EXPIRY_SHARD = "EXPIRING"
IN_FLIGHT_SHARDS = 16
IN_FLIGHT = frozenset({OrderStatus.PENDING, OrderStatus.PROCESSING})


def in_flight_shard(order_id: str) -> str:
    return f"IN_FLIGHT#{zlib.crc32(order_id.encode()) % IN_FLIGHT_SHARDS}"


def index_attributes(order: Order) -> dict[str, Any]:
    """`created_key` for UserOrdersIndex; `book_key` (sparse: QUEUED limit orders only) for
    OpenLimitOrders; `expiry_shard` (sparse: QUEUED orders with an expiry) for ExpiryIndex;
    `in_flight_shard` (sparse: PENDING and PROCESSING orders) for InFlightIndex."""
    attributes: dict[str, Any] = {"created_key": f"{order.created_at.isoformat()}#{order.order_id}"}
    if order.status in IN_FLIGHT:
        attributes["in_flight_shard"] = in_flight_shard(order.order_id)
    if order.status is not OrderStatus.QUEUED:
        return attributes
    kind = order.order_type
    if kind.is_limit:
        attributes["book_key"] = f"{order.asset_id}#{_side(order)}"
    if kind.is_conditional:
        attributes["stop_key"] = stop_key(order.asset_id, rise=kind.triggers_on_rise)
    if kind.is_trailing:
        attributes["trail_key"] = f"{order.asset_id}#{_side(order)}"
    if order.expires_at is not None:
        attributes["expiry_shard"] = EXPIRY_SHARD
    return attributes


def _side(order: Order) -> str:
    return "BUY" if order.order_type.is_buy else "SELL"


def stop_key(asset_id: str, *, rise: bool) -> str:
    return f"{asset_id.strip().upper()}#{'RISE' if rise else 'FALL'}"


def order_item(order: Order) -> dict[str, Any]:
    item = {**keys.order_key(order.order_id), **entity_item(order)}
    item.update({k: to_attribute(v) for k, v in index_attributes(order).items()})
    return item


def transition_put(
    table: str, current: Order, updated: Order, allowed: set[OrderStatus] | frozenset[OrderStatus]
) -> dict[str, Any]:
    """Write `updated` only if the stored order is still the one read: its status among
    `allowed` and its sequence unchanged (every change raises it), so of two racing
    writers exactly one succeeds. Also a saga step's marker check."""
    values = {f":from{i}": to_attribute(s) for i, s in enumerate(sorted(allowed))}
    return {
        "TableName": table,
        "Item": order_item(updated),
        "ConditionExpression": f"#status IN ({', '.join(values)}) AND #sequence = :sequence",
        "ExpressionAttributeNames": {"#status": "status", "#sequence": "sequence"},
        "ExpressionAttributeValues": {**values, ":sequence": to_attribute(current.sequence)},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


@dataclass(frozen=True)
class OrderDAO:
    client: DynamoDBClient
    table: str
    clock: Callable[[], datetime] = utc_now

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
                    existing=_order_fields(stored) if stored else None,
                ) from exc
            raise
        return order

    async def get_order(self, order_id: str, *, username: str | None = None) -> Order:
        """With `username`, another user's order is reported as not found (no leak)."""
        item = await get_item(self.client, self.table, keys.order_key(order_id))
        order = Order.model_validate(_order_fields(item)) if item else None
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

    async def triggered_orders(self, asset_id: str, price: Decimal) -> list[Order]:
        """The QUEUED orders a price triggers, from sparse indexes, never by a scan: limit
        buys whose limit is at or above it, limit sells at or below (OpenLimitOrders);
        conditional orders whose stop a rise reached (stop at or below it) or a fall
        reached (stop at or above it) (OpenStopOrders)."""
        found: list[Order] = []
        for side, comparison in (("BUY", ">="), ("SELL", "<=")):
            found += await self._book(asset_id, side, f"limit_price {comparison} :price", price)
        return found + await self.triggered_stops(asset_id, price)

    async def triggered_stops(self, asset_id: str, price: Decimal) -> list[Order]:
        found: list[Order] = []
        for rise, comparison in ((True, "<="), (False, ">=")):
            request = {
                "TableName": self.table,
                "IndexName": "OpenStopOrders",
                "KeyConditionExpression": f"stop_key = :key AND stop_price {comparison} :price",
                "ExpressionAttributeValues": {
                    ":key": to_attribute(stop_key(asset_id, rise=rise)),
                    ":price": to_attribute(price),
                },
            }
            found += await _index_orders(self.client, request)
        return found

    async def waiting_stops(self, asset_id: str) -> list[Order]:
        """Every QUEUED conditional order of an asset: the ones a fall triggers, highest
        stop first, then the ones a rise triggers, lowest first."""
        found: list[Order] = []
        for rise in (False, True):
            request = {
                "TableName": self.table,
                "IndexName": "OpenStopOrders",
                "KeyConditionExpression": "stop_key = :key",
                "ExpressionAttributeValues": {":key": to_attribute(stop_key(asset_id, rise=rise))},
                "ScanIndexForward": rise,
            }
            found += await _index_orders(self.client, request)
        return found

    async def improvable_trails(self, asset_id: str, price: Decimal) -> list[Order]:
        """The QUEUED trailing stops this price improves on: a sell's best below it, a
        buy's above it (TrailingStops)."""
        found: list[Order] = []
        for side, comparison in (("SELL", "<"), ("BUY", ">")):
            found += await self._trailing_stops(asset_id, side, comparison, price)
        return found

    async def trails_at(self, asset_id: str, price: Decimal) -> list[Order]:
        """The QUEUED trailing stops whose best price is exactly `price`: what a price
        update moved them to, for its redelivery to announce again."""
        found: list[Order] = []
        for side in ("SELL", "BUY"):
            found += await self._trailing_stops(asset_id, side, "=", price)
        return found

    async def _trailing_stops(
        self, asset_id: str, side: str, comparison: str, price: Decimal
    ) -> list[Order]:
        """The TrailingStops index of one asset and side, best price `comparison` price."""
        request = {
            "TableName": self.table,
            "IndexName": "TrailingStops",
            "KeyConditionExpression": f"trail_key = :key AND best_price {comparison} :price",
            "ExpressionAttributeValues": {
                ":key": to_attribute(f"{asset_id.strip().upper()}#{side}"),
                ":price": to_attribute(price),
            },
        }
        return await _index_orders(self.client, request)

    async def move_trail(self, order: Order, best: Decimal, stop: Decimal) -> Order:
        """One move the matcher decided, as its own state of the order (sequence up by
        one, like any change), so that a worker's write decided before it is refused and
        decided again, and its event has an id of its own. Conditioned on the order still
        QUEUED and its stored best still worse than `best`: a repeated or late price, or a
        racing matcher, never moves a stop back. Refused: OrderChangedException with the
        stored order (`current`, None when there is none)."""
        worse = ">" if order.order_type.is_buy else "<"
        try:
            response = await call(
                self.client,
                "update_item",
                TableName=self.table,
                Key=keys.order_key(order.order_id),
                UpdateExpression=(
                    "SET best_price = :best, stop_price = :stop, updated_at = :now "
                    "ADD #sequence :one"
                ),
                ConditionExpression=f"#status = :queued AND best_price {worse} :best",
                ExpressionAttributeNames={"#status": "status", "#sequence": "sequence"},
                ExpressionAttributeValues={
                    ":best": to_attribute(best),
                    ":stop": to_attribute(stop),
                    ":now": to_attribute(self.clock()),
                    ":one": to_attribute(1),
                    ":queued": to_attribute(OrderStatus.QUEUED),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            stored = old_item(exc)
            current = Order.model_validate(_order_fields(stored)) if stored else None
            raise OrderChangedException(
                f"the trail of order {order.order_id} changed since it was read", current=current
            ) from exc
        return _order(response["Attributes"])

    async def order_book(self, asset_id: str) -> tuple[list[Order], list[Order]]:
        """Open limit orders: bids best (highest) first, asks best (lowest) first."""
        bids = await self._book(asset_id, "BUY", None, None, forward=False)
        asks = await self._book(asset_id, "SELL", None, None, forward=True)
        return bids, asks

    async def _book(
        self,
        asset_id: str,
        side: str,
        price_condition: str | None,
        price: Decimal | None,
        forward: bool = True,
    ) -> list[Order]:
        condition = "book_key = :book" + (f" AND {price_condition}" if price_condition else "")
        values = {":book": to_attribute(f"{asset_id.strip().upper()}#{side}")}
        if price is not None:
            values[":price"] = to_attribute(price)
        request = {
            "TableName": self.table,
            "IndexName": "OpenLimitOrders",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
        }
        return await _index_orders(self.client, request)

    async def changed_since(self, moment: datetime) -> list[Order]:
        """Every order changed at or after `moment`: a Scan, for an operator's repair (the
        events of orders whose command was lost), never for the workers."""
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "SK = :order AND updated_at >= :moment",
            "ExpressionAttributeValues": {
                ":order": to_attribute("ORDER"),
                ":moment": to_attribute(moment.astimezone(UTC)),
            },
        }
        return [
            Order.model_validate(_order_fields(item))
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
            "ExpressionAttributeValues": {":order": to_attribute("ORDER"), **names},
            "ConsistentRead": True,  # an order that just ended is in the rebuild
        }
        async for item in all_items(self.client, "scan", arguments):
            yield Order.model_validate(_order_fields(item))

    async def due_orders(self, now: datetime) -> list[Order]:
        """QUEUED orders whose expiry is at or before `now`, from the sparse ExpiryIndex."""
        request = {
            "TableName": self.table,
            "IndexName": "ExpiryIndex",
            "KeyConditionExpression": "expiry_shard = :shard AND expires_at <= :now",
            "ExpressionAttributeValues": {
                ":shard": to_attribute(EXPIRY_SHARD),
                ":now": to_attribute(now),
            },
        }
        return await _index_orders(self.client, request)

    async def stalled_orders(self, changed_before: datetime) -> list[Order]:
        """PENDING and PROCESSING orders unchanged since before `changed_before`, from the
        sparse InFlightIndex (one query per shard), oldest first within a shard."""
        found: list[Order] = []
        for shard in range(IN_FLIGHT_SHARDS):
            request = {
                "TableName": self.table,
                "IndexName": "InFlightIndex",
                "KeyConditionExpression": "in_flight_shard = :shard AND updated_at < :before",
                "ExpressionAttributeValues": {
                    ":shard": to_attribute(f"IN_FLIGHT#{shard}"),
                    ":before": to_attribute(changed_before),
                },
            }
            found += await _index_orders(self.client, request)
        return found

    async def get_orders_by_user(
        self, username: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Order]:
        return await self._user_orders(username, limit, cursor, keep=None)

    async def get_orders_by_user_and_asset(
        self, username: str, asset_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Order]:
        wanted = asset_id.strip().upper()
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
        return Page([Order.model_validate(_order_fields(i)) for i in page.items], page.next_cursor)


@dataclass(frozen=True)
class OrderRef:
    """What the matcher and the sweeper need to address an order's owner."""

    order_id: str
    username: str


async def _index_orders(client: Any, request: dict[str, Any]) -> list[Order]:
    """Every order an index query finds."""
    return [
        Order.model_validate(_order_fields(item))
        async for item in all_items(client, "query", request)
    ]


def _order_fields(item: dict[str, Any]) -> dict[str, Any]:
    return without_keys(item, *INDEX_ATTRIBUTES)


def _order(item: dict[str, Any]) -> Order:
    return Order.model_validate(_order_fields(from_item(item)))
