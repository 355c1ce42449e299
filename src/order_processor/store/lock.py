"""The per-user lock: one item `USER#<name>`/`LOCK` taken by a conditional write.

Each acquisition gets a new owner id and a fencing token one higher than the last; every
saga write carries `fence(...)`, a ConditionCheck on both, so a worker that stalled past
its lease and lost the lock to another can commit nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from order_processor.domain.base import utc_now
from order_processor.exceptions import LockAcquisitionException
from order_processor.store import keys
from order_processor.store.dynamo import call, is_condition_failure, to_attribute

IDLE_LOCK_TTL = timedelta(days=1)  # TTL tidies idle lock items; fencing never relies on it


def epoch_ms(moment: datetime) -> int:
    # Lease times are numbers, so the expiry condition is a numeric comparison.
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Lease:
    username: str
    owner: str
    fencing_token: int
    expires_at: datetime


@dataclass(frozen=True)
class UserLock:
    client: Any
    table: str
    lease_seconds: int = 30
    clock: Callable[[], datetime] = utc_now
    worker_id: str = "worker"

    async def acquire(self, username: str) -> Lease:
        """One conditional update: free (never taken, released) or lease expired."""
        now = self.clock()
        owner = f"{self.worker_id}:{uuid.uuid4().hex}"
        expires = now + timedelta(seconds=self.lease_seconds)
        try:
            response = await call(
                self.client,
                "update_item",
                TableName=self.table,
                Key=keys.lock_key(username),
                UpdateExpression="SET #owner = :owner, lease_expires = :expires, #ttl = :ttl "
                "ADD fencing_token :one",
                ConditionExpression="attribute_not_exists(#owner) OR lease_expires <= :now",
                ExpressionAttributeNames={"#owner": "owner", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":owner": to_attribute(owner),
                    ":expires": to_attribute(epoch_ms(expires)),
                    ":now": to_attribute(epoch_ms(now)),
                    ":ttl": to_attribute(int((expires + IDLE_LOCK_TTL).timestamp())),
                    ":one": to_attribute(1),
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise LockAcquisitionException(
                    f"user {username} is locked by another worker"
                ) from exc
            raise
        token = int(response["Attributes"]["fencing_token"]["N"])
        return Lease(username, owner, token, expires)

    async def acquire_waiting(self, username: str, patience: float = 2.0) -> Lease:
        """A busy lock is not an error: poll it (jittered, without blocking the loop) for
        up to `patience` seconds, then let LockAcquisitionException hand the message back.
        Waiting here rather than at once handing back spares the message a receive count."""
        deadline = self.clock() + timedelta(seconds=patience)
        while True:
            try:
                return await self.acquire(username)
            except LockAcquisitionException:
                if self.clock() >= deadline:
                    raise
            await asyncio.sleep(0.05 + random.random() * 0.1)  # noqa: S311

    async def renew(self, lease: Lease) -> Lease:
        expires = self.clock() + timedelta(seconds=self.lease_seconds)
        await self._owned_update(
            lease, "SET lease_expires = :expires", {":expires": epoch_ms(expires)}
        )
        return Lease(lease.username, lease.owner, lease.fencing_token, expires)

    async def release(self, lease: Lease) -> None:
        """Only by its owner; the item stays so that the next token is higher."""
        # Already taken over after expiry: nothing of ours to release.
        with contextlib.suppress(LockAcquisitionException):
            await self._owned_update(lease, "REMOVE #owner SET lease_expires = :zero", {":zero": 0})

    async def _owned_update(self, lease: Lease, expression: str, values: dict[str, Any]) -> None:
        try:
            await call(
                self.client,
                "update_item",
                TableName=self.table,
                Key=keys.lock_key(lease.username),
                UpdateExpression=expression,
                ConditionExpression="#owner = :owner AND fencing_token = :token",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    **{k: to_attribute(v) for k, v in values.items()},
                    ":owner": to_attribute(lease.owner),
                    ":token": to_attribute(lease.fencing_token),
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise LockAcquisitionException(f"lost the lock of user {lease.username}") from exc
            raise

    def fence(self, lease: Lease) -> dict[str, Any]:
        """The ConditionCheck every saga transaction carries."""
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": keys.lock_key(lease.username),
                "ConditionExpression": "#owner = :lock_owner AND fencing_token = :lock_token",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {
                    ":lock_owner": to_attribute(lease.owner),
                    ":lock_token": to_attribute(lease.fencing_token),
                },
            }
        }
