"""Found by the issue-21 attacker; each test failed first.

A read whose keys DynamoDB keeps leaving unprocessed is counted as
a bug.

`DynamoLedger._batch_get` asks again for the keys a BatchGetItem left in `UnprocessedKeys`
(throttling, or "an internal processing failure": DynamoDB API Reference, BatchGetItem),
eight times over about 13 s, then raises `OrderProcessorError("the read was throttled too
long")`: the root class, `retryable = False`. The handler takes that for an unforeseen
failure, counts it, and after five deliveries moves the good command (and its order's
later commands) to the DLQ. The message says throttling; the class says permanent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from order_processor.exceptions import ServiceUnavailableException
from order_processor.handlers.commands import is_transient_failure
from order_processor.store.ledger import DynamoLedger

_real_sleep = asyncio.sleep


class HotPartition:
    """BatchGetItem that answers 200 and leaves every key unprocessed, for longer than the
    ledger's eight tries."""

    def __init__(self) -> None:
        self.calls = 0

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"Responses": {table: [] for table in RequestItems}, "UnprocessedKeys": RequestItems}


async def test_a_read_left_unprocessed_is_transient_not_a_bug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_wait(seconds: float) -> None:
        await _real_sleep(0)

    monkeypatch.setattr("asyncio.sleep", no_wait)
    client = HotPartition()
    ledger = DynamoLedger(client, "users", "orders", "inventory")  # type: ignore[arg-type]

    with pytest.raises(ServiceUnavailableException) as raised:
        await ledger.read("alice_01", order_id="o-1", asset_id="BTC")

    assert client.calls == 8
    assert is_transient_failure(raised.value), (
        f"{type(raised.value).__name__}({raised.value}) would be counted against the command"
    )
