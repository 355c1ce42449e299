"""The analytics views in DynamoDB: each order's final event applied once, atomically.

One TransactWriteItems per final event writes, all or nothing:
- `ORDER#<order id>` / `FINAL`, on condition that it does not exist: the order's final
  event applied (a copy, under any event id, fails the condition and changes nothing);
- the counters it adds to, sharded by order id (`TOTALS#<s>`, `RATE#<s>`,
  `VOLUME#<asset>#<s>`, a fill's volume under its quote currency) so that concurrent
  events rarely touch one item (DynamoDB cancels a transaction that meets another on the
  same item) and no partition runs hot;
- for a fill, the fill itself (`FILLS#<user>#<asset>` / `<time>#<order id>`) and the
  user's position in the asset (`POSITIONS#<s>` / `<user>#<asset>`), written on condition
  that its fill count is still the one read. A fill later than the position's last is
  added to it; an earlier one (reordered delivery) recomputes it from the stored fills,
  so the position is always its fills in the order they happened. Within one worker the
  fills of a position take turns (across replicas, the condition decides).

A conversion (`balance.converted`) is one TransactWriteItems too: its marker
`CONVERTED#<user>#<conversion id>`, and its pair's figures added to the totals of its
shard (a market buy paid in another currency adds them with its order's counters). The
items' layout is `analytics.items`.

Readers sum the shards. Nothing here ever decrements, and nothing is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.analytics import items
from order_processor.analytics.items import SHARDS, TOTALS_SK, key, shard
from order_processor.analytics.parts import Contribution, Fill, Part
from order_processor.analytics.views import Position, Report
from order_processor.awserrors import cancellation_codes
from order_processor.exceptions import ServiceUnavailableException
from order_processor.store.dynamo import (
    CONDITION_FAILED,
    all_items,
    call,
    get_item,
    to_item,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

# DynamoDB cancels a transaction that meets another on an item (TransactionConflict), so
# each counter item takes one transaction at a time: roughly SHARDS x 1 / (a transaction's
# latency) final events a second at most (8 x ~50 on AWS), retried with jitter meanwhile.
ATTEMPTS = 8


def _adding(table: str, pk: str, sk: str, amounts: dict[str, Any]) -> dict[str, Any]:
    """An Update that ADDs each amount to its attribute (created at zero)."""
    names = {f"#a{i}": name for i, name in enumerate(amounts)}
    values = to_item({f":v{i}": value for i, value in enumerate(amounts.values())})
    expression = "ADD " + ", ".join(f"#a{i} :v{i}" for i in range(len(amounts)))
    return {
        "Update": {
            "TableName": table,
            "Key": key(pk, sk),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


@dataclass(frozen=True)
class AnalyticsStore:
    client: DynamoDBClient
    table: str
    # Fills of one position take turns within a process: a backlog of one busy user's
    # fills, drained `concurrency` at a time, would otherwise race for the position item
    # and some would lose every attempt, again at each delivery, into the dead letters.
    _turns: dict[tuple[str, str], tuple[asyncio.Lock, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    async def apply(self, part: Part) -> bool:
        """Apply a part once; False when its order's final event (or its conversion) was
        applied before. Contention (another event on the same counters or position) is
        retried here a few times, then raised as retryable."""
        if not isinstance(part, Contribution) or part.fill is None:
            return await self._apply(part)
        async with self._turn((part.username, part.asset_id)):
            return await self._apply(part)

    @contextlib.asynccontextmanager
    async def _turn(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._turns.get(key, (asyncio.Lock(), 0))
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[key]
            if users == 1:
                del self._turns[key]
            else:
                self._turns[key] = (lock, users - 1)

    async def _apply(self, part: Part) -> bool:
        for attempt in range(ATTEMPTS):
            writes = self._counter_writes(part)
            if isinstance(part, Contribution) and part.fill is not None:
                writes += await self._fill_writes(part, part.fill)
            try:
                await call(self.client, "transact_write_items", TransactItems=writes)
                return True
            except ServiceUnavailableException:
                pass  # a concurrent transaction on the same item: decide again
            except ClientError as exc:
                codes = cancellation_codes(exc)
                if not codes:
                    raise
                if codes[0] == CONDITION_FAILED:
                    return False  # the order's final event (the conversion) is in already
                if CONDITION_FAILED not in codes:
                    raise
                # the position moved since it was read: read it again
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))  # noqa: S311
        raise ServiceUnavailableException(f"analytics: {part.marker} met contention")

    def _counter_writes(self, part: Part) -> list[dict[str, Any]]:
        s = shard(part.order_id if isinstance(part, Contribution) else part.marker)
        marker = {
            "Put": {
                "TableName": self.table,
                "Item": items.marker_item(part),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }
        writes = [marker, _adding(self.table, f"TOTALS#{s}", TOTALS_SK, items.total_amounts(part))]
        if not isinstance(part, Contribution):
            return writes
        counts = {f"{part.order_type}|{part.status}": 1}
        writes.append(_adding(self.table, f"RATE#{s}", part.minute, counts))
        if part.fill is not None:
            for kind, bucket in part.buckets():
                sk = items.volume_sk(kind, bucket, part.fill.currency)
                amounts = items.volume_amounts(part.fill)
                writes.append(_adding(self.table, f"VOLUME#{part.asset_id}#{s}", sk, amounts))
        return writes

    async def _fill_writes(self, part: Contribution, fill: Fill) -> list[dict[str, Any]]:
        pk, sk = f"POSITIONS#{shard(part.username)}", f"{part.username}#{part.asset_id}"
        stored = await get_item(self.client, self.table, key(pk, sk))
        position = items.position(stored) if stored else Position()
        if fill.key > position.last:
            position.add(fill)
        else:  # an earlier fill arrived late: the position again, in fill order
            fills = await self._fills(part.username, part.asset_id)
            position = Position.of([f for f in fills if f.order_id != fill.order_id] + [fill])
        condition: dict[str, Any] = (
            {
                "ConditionExpression": "fills = :seen",
                "ExpressionAttributeValues": to_item({":seen": stored["fills"]}),
            }
            if stored
            else {"ConditionExpression": "attribute_not_exists(PK)"}
        )
        return [
            {"Put": {"TableName": self.table, "Item": items.fill_item(part, fill)}},
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item({"PK": pk, "SK": sk, **items.position_item(position)}),
                    **condition,
                }
            },
        ]

    async def _fills(self, user: str, asset: str) -> list[Fill]:
        request = {
            "TableName": self.table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"FILLS#{user}#{asset}"}},
            "ConsistentRead": True,
        }
        return [items.fill(item) async for item in all_items(self.client, "query", request)]

    async def report(self, *, user: str | None = None, asset: str | None = None) -> Report:
        """The views as stored: every shard summed. With `user`, only that user's
        positions; with `asset`, only that asset's volume and positions (the conversions
        are every user's)."""
        report = Report()
        assets = await self._read_counters(report)
        for asset_id in sorted(assets if asset is None else assets & {asset}):
            await self._read_volume(report, asset_id)
        await self._read_positions(report, user, asset)
        return report

    async def _read_counters(self, report: Report) -> set[str]:
        assets: set[str] = set()
        for s in range(SHARDS):
            totals = await get_item(self.client, self.table, key(f"TOTALS#{s}", TOTALS_SK))
            assets |= items.read_totals(report, totals or {})
            async for item in self._partition(f"RATE#{s}"):
                for name, count in item.items():
                    if "|" in name:
                        order_type, status = name.split("|", 1)
                        report.rate[(item["SK"], order_type, status)] += int(count)
        return assets

    async def _read_volume(self, report: Report, asset_id: str) -> None:
        for s in range(SHARDS):
            async for item in self._partition(f"VOLUME#{asset_id}#{s}"):
                items.read_volume(report, asset_id, item)

    async def _read_positions(self, report: Report, user: str | None, asset: str | None) -> None:
        for s in range(SHARDS) if user is None else [shard(user)]:
            async for item in self._partition(f"POSITIONS#{s}", f"{user}#" if user else None):
                owner, asset_id = str(item["SK"]).split("#", 1)
                if asset is None or asset_id == asset:
                    report.positions[(owner, asset_id)] = items.position(item)

    def _partition(self, pk: str, prefix: str | None = None) -> Any:
        condition, values = "PK = :pk", {":pk": {"S": pk}}
        if prefix:
            condition += " AND begins_with(SK, :prefix)"
            values[":prefix"] = {"S": prefix}
        request = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,  # as the totals: a comparison right after a drain
        }
        return all_items(self.client, "query", request)

    async def replace(self, report: Report, finals: dict[str, Part]) -> None:
        """Write a rebuilt report as the views (shard 0), with the markers of the orders
        and conversions it counts and the orders' fills, after deleting what was stored.
        For an operator, with the analytics worker stopped (`order-processor analytics
        --rebuild --write`)."""
        keys = [
            {"PK": item["PK"], "SK": item["SK"]}
            async for item in all_items(
                self.client, "scan", {"TableName": self.table, "ProjectionExpression": "PK, SK"}
            )
        ]
        await self._batch([{"DeleteRequest": {"Key": to_item(key)}} for key in keys])
        written = items.report_items(report)
        await self._batch([{"PutRequest": {"Item": item}} for item in written])
        await self._batch(
            [{"PutRequest": {"Item": items.marker_item(part)}} for part in finals.values()]
        )
        # The fills too: a late fill recomputes its position from them.
        await self._batch(
            [
                {"PutRequest": {"Item": items.fill_item(part, part.fill)}}
                for part in finals.values()
                if isinstance(part, Contribution) and part.fill is not None
            ]
        )

    async def _batch(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table: requests[start : start + 25]}
            for attempt in range(ATTEMPTS):
                response = await call(self.client, "batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                await asyncio.sleep(0.05 * (attempt + 1))
            if pending:
                raise ServiceUnavailableException("analytics: writes left unprocessed")
