"""Which DynamoDB items a request touches. A Put names a whole item, so its key is picked
out with the table's key schema: learnt from CreateTable requests seen, else asked of the
emulator once per table (DescribeTable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from order_processor.faultproxy.conflicts import ItemRef
from order_processor.faultproxy.upstream import Upstream, UpstreamError

SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
TRANSACT_ACTIONS = ("Put", "Update", "Delete", "ConditionCheck")


@dataclass
class KeySchemas:
    upstream: Upstream
    _names: dict[str, tuple[str, ...]] = field(default_factory=dict)

    async def key_names(self, table: str, signed_as: Mapping[str, str]) -> tuple[str, ...]:
        if table not in self._names:
            described = await self.upstream.dynamodb(
                "DescribeTable", {"TableName": table}, signed_as
            )
            self.learn(table, described["Table"]["KeySchema"])
        return self._names[table]

    def learn(self, table: str, key_schema: list[dict[str, str]]) -> None:
        self._names[table] = tuple(element["AttributeName"] for element in key_schema)

    def forget(self, table: str) -> None:
        self._names.pop(table, None)

    async def ref(
        self, table: str, attributes: Mapping[str, Any], signed_as: Mapping[str, str]
    ) -> ItemRef:
        names = await self.key_names(table, signed_as)
        return ItemRef.of(table, {name: attributes[name] for name in names if name in attributes})


async def written_items(
    operation: str, request: Mapping[str, Any], schemas: KeySchemas, signed_as: Mapping[str, str]
) -> list[ItemRef]:
    """The items a write (or TransactGetItems) names, in the request's order; none when it
    names a missing table or is malformed: the emulator refuses it, nothing is in flight."""
    try:
        return await _named(operation, request, schemas, signed_as)
    except (UpstreamError, KeyError, TypeError, AttributeError):
        return []


async def _named(
    operation: str, request: Mapping[str, Any], schemas: KeySchemas, signed_as: Mapping[str, str]
) -> list[ItemRef]:
    if operation in SINGLE_WRITES:
        return [await _single(request, schemas, signed_as)]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        refs = []
        for member in request.get("TransactItems", []):
            for action in (*TRANSACT_ACTIONS, "Get"):
                if action in member:
                    refs.append(await _single(member[action], schemas, signed_as))
        return refs
    if operation == "BatchWriteItem":
        return [
            await _batch_entry(table, entry, schemas, signed_as)
            for table, entries in request.get("RequestItems", {}).items()
            for entry in entries
        ]
    return []


async def _batch_entry(
    table: str, entry: Mapping[str, Any], schemas: KeySchemas, signed_as: Mapping[str, str]
) -> ItemRef:
    if "PutRequest" in entry:
        return await schemas.ref(table, entry["PutRequest"]["Item"], signed_as)
    return ItemRef.of(table, entry["DeleteRequest"]["Key"])


async def _single(
    action: Mapping[str, Any], schemas: KeySchemas, signed_as: Mapping[str, str]
) -> ItemRef:
    table = action["TableName"]
    if "Key" in action:
        return ItemRef.of(table, action["Key"])
    return await schemas.ref(table, action["Item"], signed_as)
