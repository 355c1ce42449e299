"""The analytics views in DynamoDB: each order's final event applied once, atomically.

One TransactWriteItems per final event writes, all or nothing:
- `ORDER#<order id>` / `FINAL`, on condition that it does not exist: the order's final
  event applied (a copy, under any event id, fails the condition and changes nothing);
- the counters it adds to, sharded by order id (`TOTALS#<s>`, `RATE#<s>`,
  `VOLUME#<asset>#<s>`) so that concurrent events rarely touch one item (DynamoDB cancels
  a transaction that meets another on the same item) and no partition runs hot;
- for a fill, the fill itself (`FILLS#<user>#<asset>` / `<time>#<order id>`) and the
  user's position in the asset (`POSITIONS#<s>` / `<user>#<asset>`), written on condition
  that its fill count is still the one read. A fill later than the position's last is
  added to it; an earlier one (reordered delivery) recomputes it from the stored fills,
  so the position is always its fills in the order they happened. Within one worker the
  fills of a position take turns (across replicas, the condition decides).

Readers sum the shards. Nothing here ever decrements, and nothing is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from order_processor.analytics.views import (
    BUCKETS,
    EXACT,
    Contribution,
    Fill,
    Position,
    Report,
)
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
SHARDS = 8
ATTEMPTS = 8
FINAL_SK = "FINAL"
TOTALS_SK = "ALL"


def shard(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _adding(table: str, pk: str, sk: str, amounts: dict[str, Any]) -> dict[str, Any]:
    """An Update that ADDs each amount to its attribute (created at zero)."""
    names = {f"#a{i}": name for i, name in enumerate(amounts)}
    values = to_item({f":v{i}": value for i, value in enumerate(amounts.values())})
    expression = "ADD " + ", ".join(f"#a{i} :v{i}" for i in range(len(amounts)))
    return {
        "Update": {
            "TableName": table,
            "Key": _key(pk, sk),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def _total_amounts(part: Contribution) -> dict[str, Any]:
    amounts: dict[str, Any] = {f"s_{part.status}": 1}
    if part.failure_reason:
        amounts[f"f_{part.failure_reason}"] = 1
    if part.latency:
        amounts[f"l_{part.latency[0]}_{part.latency[1]}"] = 1
    amounts["assets"] = {part.asset_id}
    return amounts


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

    async def apply(self, part: Contribution) -> bool:
        """Apply a final event's contribution once; False when its order's final event
        was applied before. Contention (another event on the same counters or position)
        is retried here a few times, then raised as retryable."""
        if part.fill is None:
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

    async def _apply(self, part: Contribution) -> bool:
        for attempt in range(ATTEMPTS):
            writes = self._counter_writes(part)
            if part.fill is not None:
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
                    return False  # the order's final event is in already
                if CONDITION_FAILED not in codes:
                    raise
                # the position moved since it was read: read it again
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))  # noqa: S311
        raise ServiceUnavailableException(f"analytics: order {part.order_id} met contention")

    def _counter_writes(self, part: Contribution) -> list[dict[str, Any]]:
        s = shard(part.order_id)
        marker = {
            "Put": {
                "TableName": self.table,
                "Item": _marker_item(part),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }
        writes = [
            marker,
            _adding(self.table, f"TOTALS#{s}", TOTALS_SK, _total_amounts(part)),
            _adding(self.table, f"RATE#{s}", part.minute, {f"{part.order_type}|{part.status}": 1}),
        ]
        if part.fill is not None:
            for kind, bucket in part.buckets():
                writes.append(
                    _adding(
                        self.table,
                        f"VOLUME#{part.asset_id}#{s}",
                        f"{kind}#{bucket}",
                        {"orders": 1, "quantity": part.fill.quantity, "usd": part.fill.usd},
                    )
                )
        return writes

    async def _fill_writes(self, part: Contribution, fill: Fill) -> list[dict[str, Any]]:
        pk, sk = f"POSITIONS#{shard(part.username)}", f"{part.username}#{part.asset_id}"
        stored = await get_item(self.client, self.table, _key(pk, sk))
        position = _position(stored) if stored else Position()
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
            {"Put": {"TableName": self.table, "Item": _fill_item(part, fill)}},
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item({"PK": pk, "SK": sk, **_position_item(position)}),
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
        return [_fill(item) async for item in all_items(self.client, "query", request)]

    async def report(self, *, user: str | None = None, asset: str | None = None) -> Report:
        """The views as stored: every shard summed. With `user`, only that user's
        positions; with `asset`, only that asset's volume and positions."""
        report = Report()
        assets = await self._read_counters(report)
        for asset_id in sorted(assets if asset is None else assets & {asset}):
            await self._read_volume(report, asset_id)
        await self._read_positions(report, user, asset)
        return report

    async def _read_counters(self, report: Report) -> set[str]:
        assets: set[str] = set()
        for s in range(SHARDS):
            totals = await get_item(self.client, self.table, _key(f"TOTALS#{s}", TOTALS_SK))
            assets |= _read_totals(report, totals or {})
            async for item in self._partition(f"RATE#{s}"):
                for name, count in item.items():
                    if "|" in name:
                        order_type, status = name.split("|", 1)
                        report.rate[(item["SK"], order_type, status)] += int(count)
        return assets

    async def _read_volume(self, report: Report, asset_id: str) -> None:
        for s in range(SHARDS):
            async for item in self._partition(f"VOLUME#{asset_id}#{s}"):
                kind, bucket = str(item["SK"]).split("#", 1)
                volume = report.volume[(asset_id, kind, bucket)]
                volume.orders += int(item["orders"])
                with localcontext(EXACT):  # the shards' sums, without rounding
                    volume.quantity += item["quantity"]
                    volume.usd += item["usd"]

    async def _read_positions(self, report: Report, user: str | None, asset: str | None) -> None:
        for s in range(SHARDS) if user is None else [shard(user)]:
            async for item in self._partition(f"POSITIONS#{s}", f"{user}#" if user else None):
                owner, asset_id = str(item["SK"]).split("#", 1)
                if asset is None or asset_id == asset:
                    report.positions[(owner, asset_id)] = _position(item)

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

    async def replace(self, report: Report, finals: dict[str, Contribution]) -> None:
        """Write a rebuilt report as the views (shard 0), with the final markers and the
        fills of the orders it counts, after deleting what was stored. For an operator, with the
        analytics worker stopped (`order-processor analytics --rebuild --write`)."""
        keys = [
            {"PK": item["PK"], "SK": item["SK"]}
            async for item in all_items(
                self.client, "scan", {"TableName": self.table, "ProjectionExpression": "PK, SK"}
            )
        ]
        await self._batch([{"DeleteRequest": {"Key": to_item(key)}} for key in keys])
        await self._batch([{"PutRequest": {"Item": item}} for item in _report_items(report)])
        await self._batch(
            [{"PutRequest": {"Item": _marker_item(part)}} for part in finals.values()]
        )
        # The fills too: a late fill recomputes its position from them.
        await self._batch(
            [
                {"PutRequest": {"Item": _fill_item(part, part.fill)}}
                for part in finals.values()
                if part.fill is not None
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


def _marker_item(part: Contribution) -> dict[str, Any]:
    """The order's final event applied: what keeps any copy of it out."""
    return to_item(
        {
            "PK": f"ORDER#{part.order_id}",
            "SK": FINAL_SK,
            "event_id": part.event_id,
            "status": part.status,
            "at": part.at,
        }
    )


def _read_totals(report: Report, item: dict[str, Any]) -> set[str]:
    for name, value in item.items():
        kind, _, rest = name.partition("_")
        if kind == "s" and rest:
            report.statuses[rest] += int(value)
        elif kind == "f" and rest:
            report.failures[rest] += int(value)
        elif kind == "l" and rest:
            latency_kind, bucket = rest.split("_", 1)
            report.latency[latency_kind][bucket] += int(value)
    return {str(a) for a in item.get("assets", set())}


def _report_items(report: Report) -> list[dict[str, Any]]:
    """A report as stored items, all in shard 0."""
    totals: dict[str, Any] = {"PK": "TOTALS#0", "SK": TOTALS_SK}
    totals |= {f"s_{k}": v for k, v in report.statuses.items() if v}
    totals |= {f"f_{k}": v for k, v in report.failures.items() if v}
    for kind, histogram in report.latency.items():
        totals |= {f"l_{kind}_{bucket}": v for bucket, v in histogram.items() if v}
    assets = {asset for asset, _, _ in report.volume} | {a for _, a in report.positions}
    if assets:
        totals["assets"] = assets
    rates: dict[str, dict[str, Any]] = {}
    for (minute, order_type, status), count in report.rate.items():
        rates.setdefault(minute, {"PK": "RATE#0", "SK": minute})[f"{order_type}|{status}"] = count
    items = [totals, *rates.values()]
    items += [
        {
            "PK": f"VOLUME#{asset}#0",
            "SK": f"{kind}#{bucket}",
            "orders": v.orders,
            "quantity": v.quantity,
            "usd": v.usd,
        }
        for (asset, kind, bucket), v in report.volume.items()
        if kind in BUCKETS
    ]
    items += [
        {"PK": f"POSITIONS#{shard(user)}", "SK": f"{user}#{asset}", **_position_item(p)}
        for (user, asset), p in report.positions.items()
    ]
    return [to_item(item) for item in items]


def _fill_item(part: Contribution, fill: Fill) -> dict[str, Any]:
    return to_item(
        {
            "PK": f"FILLS#{part.username}#{part.asset_id}",
            "SK": fill.key,
            "buy": fill.buy,
            "quantity": fill.quantity,
            "usd": fill.usd,
            "at": fill.at,
            "order_id": fill.order_id,
        }
    )


def _position_item(position: Position) -> dict[str, Any]:
    return {
        "quantity": position.quantity,
        "cost": position.cost,
        "realised": position.realised,
        "bought": position.bought,
        "sold": position.sold,
        "fills": position.fills,
        "last": position.last,
    }


def _position(item: dict[str, Any]) -> Position:
    return Position(
        quantity=Decimal(item["quantity"]),
        cost=Decimal(item["cost"]),
        realised=Decimal(item["realised"]),
        bought=Decimal(item["bought"]),
        sold=Decimal(item["sold"]),
        fills=int(item["fills"]),
        last=str(item["last"]),
    )


def _fill(item: dict[str, Any]) -> Fill:
    return Fill(
        datetime.fromisoformat(str(item["at"])),
        str(item["order_id"]),
        bool(item["buy"]),
        Decimal(item["quantity"]),
        Decimal(item["usd"]),
    )
