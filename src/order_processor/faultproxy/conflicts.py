"""DynamoDB's transaction conflicts, as its developer guide states them ("Transaction
conflict handling"), over the items of the requests in flight through the proxy:

- a PutItem, UpdateItem or DeleteItem of an item that an ongoing TransactWriteItems
  includes fails with TransactionConflictException;
- a TransactWriteItems with an item that another ongoing TransactWriteItems includes is
  cancelled (TransactionCanceledException, reason TransactionConflict on that item);
- a TransactGetItems with an item that an ongoing TransactWriteItems, BatchWriteItem,
  PutItem, UpdateItem or DeleteItem includes is cancelled likewise.

The first request to arrive holds its items until it is answered; only later arrivals
are refused, so of two concurrent transactions on one item exactly one commits.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CONFLICT_REASON = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
NO_REASON = {"Code": "None"}


@dataclass(frozen=True, order=True)
class ItemRef:
    """An item: its table and its primary key, the key's attributes in a fixed order."""

    table: str
    key: str

    @classmethod
    def of(cls, table: str, key: Mapping[str, Any]) -> ItemRef:
        return cls(table, json.dumps(key, sort_keys=True, separators=(",", ":")))

    def key_attributes(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.key)
        return loaded


@dataclass(frozen=True)
class Hold:
    refs: tuple[ItemRef, ...]
    transactional: bool


@dataclass
class ItemsInFlight:
    _by_transactions: Counter[ItemRef] = field(default_factory=Counter)
    _by_writes: Counter[ItemRef] = field(default_factory=Counter)

    def hold(self, refs: Iterable[ItemRef], *, transactional: bool) -> Hold:
        hold = Hold(tuple(refs), transactional)
        (self._by_transactions if transactional else self._by_writes).update(hold.refs)
        return hold

    def release(self, hold: Hold) -> None:
        held = self._by_transactions if hold.transactional else self._by_writes
        held.subtract(hold.refs)
        for ref in hold.refs:
            if held[ref] <= 0:
                del held[ref]

    def held_by_transaction(self, refs: Sequence[ItemRef]) -> list[bool]:
        return [self._by_transactions[ref] > 0 for ref in refs]

    def held_by_any_write(self, refs: Sequence[ItemRef]) -> list[bool]:
        return [self._by_transactions[ref] > 0 or self._by_writes[ref] > 0 for ref in refs]

    def __len__(self) -> int:
        return len(self._by_transactions) + len(self._by_writes)


def cancellation_reasons(conflicting: Sequence[bool]) -> list[dict[str, str]]:
    return [dict(CONFLICT_REASON) if hit else dict(NO_REASON) for hit in conflicting]


def cancellation_message(reasons: Sequence[Mapping[str, str]]) -> str:
    codes = ", ".join(reason["Code"] for reason in reasons)
    return (
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
    )
