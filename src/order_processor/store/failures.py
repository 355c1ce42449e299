"""The failure budget of commands (`CommandFailures`) in the users table: one item per
command that failed for an unforeseen reason, under its user, tidied by TTL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from order_processor.domain.base import utc_now
from order_processor.store import keys
from order_processor.store.dynamo import call, to_attribute

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# A command lives on its queue and in its DLQ for at most 14 days (SQS's longest retention).
FAILURE_TTL = timedelta(days=14)


@dataclass(frozen=True)
class DynamoCommandFailures:
    client: DynamoDBClient
    table: str
    clock: Callable[[], datetime] = utc_now

    async def record(self, username: str, command_id: str, attempt: str) -> int:
        # A string set, not a counter: counting the same attempt twice (botocore retrying
        # an ADD whose answer was lost) adds nothing.
        response = await call(
            self.client,
            "update_item",
            TableName=self.table,
            Key=keys.failure_key(username, command_id),
            UpdateExpression="ADD attempts :attempt SET #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={
                ":attempt": {"SS": [attempt]},
                ":ttl": to_attribute(int((self.clock() + FAILURE_TTL).timestamp())),
            },
            ReturnValues="ALL_NEW",
        )
        return len(response["Attributes"]["attempts"]["SS"])
