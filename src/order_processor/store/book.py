"""The order book over DynamoDB (the `OrderBook` port, and what the operator's views
read): the QUEUED orders of an asset through the sparse indexes, never by a scan (what a
fall or a rise reaches through FallTriggers or RiseTriggers, one query each; the limit
orders' book through OpenLimitOrders, the waiting stops through OpenStopOrders), the
trail moves the matcher decided, applied on condition, and the orders due (ExpiryIndex)
and stalled (InFlightIndex) for the sweeper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.domain.base import utc_now
from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.triggers import PriceMove, reach_price
from order_processor.exceptions import OrderChangedException
from order_processor.store import keys
from order_processor.store.dynamo import (
    all_items,
    call,
    is_condition_failure,
    old_item,
    to_attribute,
)
from order_processor.store.items import order_of, order_of_attributes

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class DynamoOrderBook:
    client: DynamoDBClient
    table: str
    clock: Callable[[], datetime] = utc_now

    async def reached(self, asset_id: str, price: Decimal, move: PriceMove) -> list[Order]:
        """The QUEUED orders a `move` to `price` reaches, from one sparse index: on a fall
        those whose fall price is at or above it (FallTriggers), on a rise those whose
        rise price is at or below it (RiseTriggers)."""
        index = keys.REACH_INDEXES[move]
        comparison = ">=" if move is PriceMove.FALL else "<="
        request = {
            "TableName": self.table,
            "IndexName": index.name,
            "KeyConditionExpression": f"#key = :key AND #price {comparison} :price",
            "ExpressionAttributeNames": {"#key": index.key, "#price": index.price},
            "ExpressionAttributeValues": {
                ":key": to_attribute(keys.reach_key(asset_id)),
                ":price": to_attribute(price),
            },
        }
        return await index_orders(self.client, request)

    async def triggered_stops(self, asset_id: str, price: Decimal) -> list[Order]:
        found: list[Order] = []
        for rise, comparison in ((True, "<="), (False, ">=")):
            request = {
                "TableName": self.table,
                "IndexName": "OpenStopOrders",
                "KeyConditionExpression": f"stop_key = :key AND stop_price {comparison} :price",
                "ExpressionAttributeValues": {
                    ":key": to_attribute(keys.stop_key(asset_id, rise=rise)),
                    ":price": to_attribute(price),
                },
            }
            found += await index_orders(self.client, request)
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
                "ExpressionAttributeValues": {
                    ":key": to_attribute(keys.stop_key(asset_id, rise=rise))
                },
                "ScanIndexForward": rise,
            }
            found += await index_orders(self.client, request)
        return found

    async def move_trail(self, order: Order, best: Decimal, stop: Decimal) -> Order:
        """One move the matcher decided, as its own state of the order (sequence up by
        one, like any change), so that a worker's write decided before it is refused and
        decided again, and its event has an id of its own. Conditioned on the order still
        QUEUED and its stored best still worse than `best`: a repeated or late price, or a
        racing matcher, never moves a stop back. Refused: OrderChangedException with the
        stored order (`current`, None when there is none)."""
        worse = ">" if order.order_type.is_buy else "<"
        # Its reach prices follow (the stop on one side, the best on the other).
        moved = order.evolve(best_price=best, stop_price=stop)
        reach = {
            index.price: at
            for move, index in keys.REACH_INDEXES.items()
            if (at := reach_price(moved, move)) is not None
        }
        assignments = ["best_price = :best", "stop_price = :stop", "updated_at = :now"]
        assignments += [f"{attribute} = :{attribute}" for attribute in reach]
        try:
            response = await call(
                self.client,
                "update_item",
                TableName=self.table,
                Key=keys.order_key(order.order_id),
                UpdateExpression="SET " + ", ".join(assignments) + " ADD #sequence :one",
                ConditionExpression=f"#status = :queued AND best_price {worse} :best",
                ExpressionAttributeNames={"#status": "status", "#sequence": "sequence"},
                ExpressionAttributeValues={
                    ":best": to_attribute(best),
                    ":stop": to_attribute(stop),
                    ":now": to_attribute(self.clock()),
                    ":one": to_attribute(1),
                    ":queued": to_attribute(OrderStatus.QUEUED),
                    **{f":{attribute}": to_attribute(at) for attribute, at in reach.items()},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            stored = old_item(exc)
            current = order_of(stored) if stored else None
            raise OrderChangedException(
                f"the trail of order {order.order_id} changed since it was read", current=current
            ) from exc
        return order_of_attributes(response["Attributes"])

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
        values = {":book": to_attribute(keys.book_key(asset_id, side))}
        if price is not None:
            values[":price"] = to_attribute(price)
        request = {
            "TableName": self.table,
            "IndexName": "OpenLimitOrders",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
        }
        return await index_orders(self.client, request)

    async def due_orders(self, now: datetime) -> list[Order]:
        """QUEUED orders whose expiry is at or before `now`, from the sparse ExpiryIndex."""
        request = {
            "TableName": self.table,
            "IndexName": "ExpiryIndex",
            "KeyConditionExpression": "expiry_shard = :shard AND expires_at <= :now",
            "ExpressionAttributeValues": {
                ":shard": to_attribute(keys.EXPIRY_SHARD),
                ":now": to_attribute(now),
            },
        }
        return await index_orders(self.client, request)

    async def stalled_orders(self, changed_before: datetime) -> list[Order]:
        """PENDING and PROCESSING orders unchanged since before `changed_before`, from the
        sparse InFlightIndex (one query per shard), oldest first within a shard."""
        found: list[Order] = []
        for shard in range(keys.IN_FLIGHT_SHARDS):
            request = {
                "TableName": self.table,
                "IndexName": "InFlightIndex",
                "KeyConditionExpression": "in_flight_shard = :shard AND updated_at < :before",
                "ExpressionAttributeValues": {
                    ":shard": to_attribute(keys.in_flight_shard_key(shard)),
                    ":before": to_attribute(changed_before),
                },
            }
            found += await index_orders(self.client, request)
        return found


async def index_orders(client: Any, request: dict[str, Any]) -> list[Order]:
    """Every order an index query finds."""
    return [order_of(item) async for item in all_items(client, "query", request)]
