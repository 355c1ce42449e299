"""An order as a DynamoDB item: its fields, the sparse index attributes kept beside them
(which status and type put it in which index), and the conditioned Put of a status change
that both the OrderDAO and the ledger's transaction write."""

from __future__ import annotations

from typing import Any

from order_processor.domain.orders import Order, OrderStatus
from order_processor.domain.triggers import reach_price
from order_processor.store import keys
from order_processor.store.dynamo import entity_item, from_item, to_attribute, without_keys

# Index attributes kept beside the order's own fields.
INDEX_ATTRIBUTES = (
    "created_key",
    "book_key",
    "stop_key",
    "trail_key",
    "expiry_shard",
    "in_flight_shard",
    *(name for index in keys.REACH_INDEXES.values() for name in (index.key, index.price)),
)
IN_FLIGHT = frozenset({OrderStatus.PENDING, OrderStatus.PROCESSING})


def index_attributes(order: Order) -> dict[str, Any]:
    """`created_key` for UserOrdersIndex; `book_key` (sparse: QUEUED limit orders only) for
    OpenLimitOrders; `expiry_shard` (sparse: QUEUED orders with an expiry) for ExpiryIndex;
    `in_flight_shard` (sparse: PENDING and PROCESSING orders) for InFlightIndex;
    `fall_key`/`fall_price` and `rise_key`/`rise_price` (sparse: QUEUED orders a fall,
    or a rise, reaches) for FallTriggers and RiseTriggers, the matcher's lookups."""
    attributes: dict[str, Any] = {"created_key": f"{order.created_at.isoformat()}#{order.order_id}"}
    if order.status in IN_FLIGHT:
        attributes["in_flight_shard"] = keys.in_flight_shard(order.order_id)
    if order.status is not OrderStatus.QUEUED:
        return attributes
    kind = order.order_type
    if kind.is_limit:
        attributes["book_key"] = keys.book_key(order.asset_id, _side(order))
    if kind.is_conditional:
        attributes["stop_key"] = keys.stop_key(order.asset_id, rise=kind.triggers_on_rise)
    if kind.is_trailing:
        attributes["trail_key"] = keys.trail_key(order.asset_id, _side(order))
    if order.expires_at is not None:
        attributes["expiry_shard"] = keys.EXPIRY_SHARD
    return attributes | reach_attributes(order)


def reach_attributes(order: Order) -> dict[str, Any]:
    """A QUEUED order's keys in FallTriggers and RiseTriggers (one each at most)."""
    attributes: dict[str, Any] = {}
    for move, index in keys.REACH_INDEXES.items():
        at = reach_price(order, move)
        if at is not None:
            attributes |= {index.key: keys.reach_key(order.asset_id), index.price: at}
    return attributes


def _side(order: Order) -> str:
    return "BUY" if order.order_type.is_buy else "SELL"


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


def order_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The order's own fields of a stored item (without its keys and index attributes)."""
    return without_keys(item, *INDEX_ATTRIBUTES)


def order_of(item: dict[str, Any]) -> Order:
    """The order of a stored item (plain, as read)."""
    return Order.model_validate(order_fields(item))


def order_of_attributes(attributes: dict[str, Any]) -> Order:
    """The order of an item as DynamoDB returns it (typed attribute values)."""
    return order_of(from_item(attributes))
