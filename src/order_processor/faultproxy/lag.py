"""Index lag: a Query or Scan of a global secondary index sees the table as it was a
moment ago, as DynamoDB's indexes, updated asynchronously, do.

The first index read of a table creates a shadow table in the emulator, `<table>--lagged`,
with the table's key schema and indexes, and copies the table into it. From then on every
write through the proxy to an item of the table schedules, after a random delay up to
`lag-ms`, a consistent read of that item from the table and its put into (or delete from)
the shadow; index reads are sent to the shadow. So a read can miss an item just written,
or return one that has just left a sparse index. The shadow is deleted with its table.
The shadows' own traffic is the proxy's, never faulted. Writes that bypass the proxy
(or PartiQL statements) are not mirrored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from order_processor.faultproxy.conflicts import ItemRef
from order_processor.faultproxy.upstream import Upstream, UpstreamError, signing

SHADOW_SUFFIX = "--lagged"
BATCH = 25


def shadow_name(table: str) -> str:
    return table + SHADOW_SUFFIX


@dataclass
class _Shadow:
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Items written while the table is being copied: synced once the copy is done, so a
    # stale copy never lands after a fresher sync.
    touched: set[ItemRef] | None = field(default_factory=set)


@dataclass
class IndexLag:
    upstream: Upstream
    _shadows: dict[str, _Shadow] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _locks: dict[ItemRef, asyncio.Lock] = field(default_factory=dict)
    _users: Counter[ItemRef] = field(default_factory=Counter)
    _pending: dict[ItemRef, Mapping[str, str]] = field(default_factory=dict)

    def shadowed(self, table: str) -> bool:
        return table in self._shadows

    async def shadow_of(self, table: str, signed_as: Mapping[str, str]) -> str:
        """The shadow's name, once it exists and holds a copy of the table."""
        shadow = self._shadows.get(table)
        if shadow is None:
            shadow = self._shadows[table] = _Shadow()
            try:
                await self._create(table, signed_as)
            except BaseException:
                self._shadows.pop(table, None)
                shadow.ready.set()
                raise
            touched, shadow.touched = shadow.touched or set(), None
            shadow.ready.set()
            for ref in touched:
                self._schedule(ref, 0.0, signed_as)
        await shadow.ready.wait()
        if table not in self._shadows:
            raise LookupError(table)
        return shadow_name(table)

    def written(
        self, refs: list[ItemRef], signed_as: Mapping[str, str], delay: Callable[[], float]
    ) -> None:
        for ref in refs:
            shadow = self._shadows.get(ref.table)
            if shadow is None:
                continue
            if shadow.touched is not None:
                shadow.touched.add(ref)
            else:
                self._schedule(ref, delay(), signed_as)

    async def drop(self, table: str, signed_as: Mapping[str, str]) -> None:
        if self._shadows.pop(table, None) is not None:
            with contextlib.suppress(UpstreamError):
                await self.upstream.dynamodb(
                    "DeleteTable", {"TableName": shadow_name(table)}, signed_as
                )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def catch_up(self) -> int:
        """Every write still on its way to the lagging copies lands now (the index catches
        up at a moment a test chooses); how many items were copied."""
        pending = list(self._pending.items())
        for ref, signed_as in pending:
            await self._sync(ref, 0.0, signed_as)
        return len(pending)

    def _schedule(self, ref: ItemRef, delay: float, signed_as: Mapping[str, str]) -> None:
        signed = signing(signed_as)
        self._pending[ref] = signed
        task = asyncio.create_task(self._sync(ref, delay, signed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync(self, ref: ItemRef, delay: float, signed_as: Mapping[str, str]) -> None:
        await asyncio.sleep(delay)
        self._pending.pop(ref, None)
        lock = self._locks.setdefault(ref, asyncio.Lock())
        self._users[ref] += 1
        try:
            # One item's syncs one at a time: a slow put of an older read never lands last.
            async with lock:
                with contextlib.suppress(UpstreamError):
                    await self._copy_item(ref, signed_as)
        finally:
            self._users[ref] -= 1
            if self._users[ref] == 0:
                del self._users[ref], self._locks[ref]

    async def _copy_item(self, ref: ItemRef, signed_as: Mapping[str, str]) -> None:
        key = ref.key_attributes()
        read = {"TableName": ref.table, "Key": key, "ConsistentRead": True}
        found = await self.upstream.dynamodb("GetItem", read, signed_as)
        shadow = shadow_name(ref.table)
        if "Item" in found:
            await self.upstream.dynamodb(
                "PutItem", {"TableName": shadow, "Item": found["Item"]}, signed_as
            )
        else:
            await self.upstream.dynamodb("DeleteItem", {"TableName": shadow, "Key": key}, signed_as)

    async def _create(self, table: str, signed_as: Mapping[str, str]) -> None:
        described = await self.upstream.dynamodb("DescribeTable", {"TableName": table}, signed_as)
        definition = shadow_definition(described["Table"])
        try:
            await self.upstream.dynamodb("CreateTable", definition, signed_as)
        except UpstreamError as refused:
            if b"ResourceInUseException" not in refused.answer.body:
                raise
            # A shadow left by an earlier proxy: its items may be stale, so start afresh.
            await self.upstream.dynamodb(
                "DeleteTable", {"TableName": shadow_name(table)}, signed_as
            )
            await self.upstream.dynamodb("CreateTable", definition, signed_as)
        await self._copy_table(table, signed_as)

    async def _copy_table(self, table: str, signed_as: Mapping[str, str]) -> None:
        scan: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = await self.upstream.dynamodb("Scan", scan, signed_as)
            items = page.get("Items", [])
            for start in range(0, len(items), BATCH):
                await self._put_all(table, items[start : start + BATCH], signed_as)
            if "LastEvaluatedKey" not in page:
                return
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def _put_all(
        self, table: str, items: list[dict[str, Any]], signed_as: Mapping[str, str]
    ) -> None:
        writes = {shadow_name(table): [{"PutRequest": {"Item": item}} for item in items]}
        while writes:
            answer = await self.upstream.dynamodb(
                "BatchWriteItem", {"RequestItems": writes}, signed_as
            )
            writes = answer.get("UnprocessedItems") or {}


def shadow_definition(table: Mapping[str, Any]) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "TableName": shadow_name(table["TableName"]),
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
    }
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = [
            {name: index[name] for name in ("IndexName", "KeySchema", "Projection")}
            for index in table.get(kind, [])
        ]
        if indexes:
            definition[kind] = indexes
    return definition
