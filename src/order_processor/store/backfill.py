"""The upgrade to the matcher's two reach indexes (FallTriggers, RiseTriggers): a QUEUED
order written before them carries neither of their keys, so no price update would find
it. `backfill_reach_keys` gives each such order its keys once (`order-processor
backfill-triggers`, run after the order workers of the new version replaced the old
ones and before the new matcher starts: README, "Upgrading").

The table is read by a consistent Scan, not through an index: an order an index has not
learnt yet is found all the same. Each order is written on condition that it is still the
state read (QUEUED, same sequence): one changed meanwhile was written by the new version
(with its keys) or left the book, and is passed over. Run it again at will: an order
with its keys is not read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.domain.orders import OrderStatus
from order_processor.store import keys
from order_processor.store.dynamo import all_items, call, is_condition_failure, to_attribute
from order_processor.store.items import order_of, reach_attributes

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Backfill:
    written: int  # orders given their keys
    changed: int  # orders that changed meanwhile (their new state has its keys, or none)


def _without_reach_keys() -> dict[str, Any]:
    missing = " AND ".join(
        f"attribute_not_exists({index.key})" for index in keys.REACH_INDEXES.values()
    )
    return {
        "FilterExpression": f"#status = :queued AND {missing}",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":queued": to_attribute(OrderStatus.QUEUED)},
        "ConsistentRead": True,
    }


async def backfill_reach_keys(client: DynamoDBClient, table: str) -> Backfill:
    written = changed = 0
    request = {"TableName": table, **_without_reach_keys()}
    async for item in all_items(client, "scan", request):
        order = order_of(item)
        attributes = reach_attributes(order)
        if not attributes:
            continue
        try:
            await call(
                client,
                "update_item",
                TableName=table,
                Key=keys.order_key(order.order_id),
                UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in attributes),
                ConditionExpression="#status = :queued AND #sequence = :sequence",
                ExpressionAttributeNames={"#status": "status", "#sequence": "sequence"},
                ExpressionAttributeValues={
                    ":queued": to_attribute(OrderStatus.QUEUED),
                    ":sequence": to_attribute(order.sequence),
                    **{f":{name}": to_attribute(value) for name, value in attributes.items()},
                },
            )
            written += 1
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            changed += 1
    return Backfill(written=written, changed=changed)
