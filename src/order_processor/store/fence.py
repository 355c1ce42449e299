"""The user's fence: one item per user (`keys.lock_key`) whose token every write of the
user's books reads and moves (see `DynamoLedger`). Whatever else must invalidate a read
of the books in flight (an admin disabling the user) moves it too."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from order_processor.store import keys
from order_processor.store.dynamo import to_attribute

IDLE_LOCK_TTL = timedelta(days=1)  # TTL tidies idle lock items; the fence never relies on it


def fence_moved(table: str, username: str, at: datetime) -> dict[str, Any]:
    """The Update that moves the token on, unconditionally (created at 1 if absent)."""
    return {
        "TableName": table,
        "Key": keys.lock_key(username),
        "UpdateExpression": "ADD fencing_token :one SET #ttl = :ttl",
        "ExpressionAttributeNames": {"#ttl": "ttl"},
        "ExpressionAttributeValues": {
            ":one": to_attribute(1),
            ":ttl": to_attribute(int((at + IDLE_LOCK_TTL).timestamp())),
        },
    }
