"""BatchGetItem's UnprocessedKeys and BatchWriteItem's UnprocessedItems.

Each key (or put/delete request) is withheld with the `unprocessed` rate; the rest are
forwarded and the upstream's answer gets the withheld ones added to its Unprocessed part,
under their table with the table's original options (ConsistentRead, projection...). As
DynamoDB documents, a batch of which nothing could be processed is not answered with
everything unprocessed but refused whole: ProvisionedThroughputExceededException.
"""

from __future__ import annotations

import json
from typing import Any

from order_processor.faultproxy.conflicts import ItemRef
from order_processor.faultproxy.errors import (
    THROTTLE_MESSAGES,
    Answer,
    dynamodb_error,
    with_document,
)
from order_processor.faultproxy.exchange import Exchange
from order_processor.faultproxy.items import written_items

Split = tuple[dict[str, list[Any]], dict[str, list[Any]]]


def throughput_exceeded() -> Answer:
    code = "ProvisionedThroughputExceededException"
    return dynamodb_error(code, THROTTLE_MESSAGES[code])


def withhold(ex: Exchange, by_table: dict[str, list[Any]]) -> Split:
    """(kept, withheld) per table, one draw per entry."""
    kept: dict[str, list[Any]] = {}
    withheld: dict[str, list[Any]] = {}
    for table, entries in by_table.items():
        for entry in entries:
            (withheld if ex.draw("unprocessed") else kept).setdefault(table, []).append(entry)
    return kept, withheld


async def batch_get(ex: Exchange) -> Answer:
    request = json.loads(ex.body)
    wanted = request["RequestItems"]
    kept, withheld = withhold(ex, {table: spec["Keys"] for table, spec in wanted.items()})
    if not withheld:
        return await ex.forward()
    if not kept:
        ex.inject("throttle")
        return throughput_exceeded()
    ex.inject("unprocessed", sum(map(len, withheld.values())))
    forwarded = {t: {**wanted[t], "Keys": keys} for t, keys in kept.items()}
    answer = await ex.forward(json.dumps({**request, "RequestItems": forwarded}).encode())
    if answer.status != 200:
        return answer
    document = answer.json()
    unprocessed = document.get("UnprocessedKeys") or {}
    for table, keys in withheld.items():
        entry = unprocessed.setdefault(table, {**wanted[table], "Keys": []})
        entry["Keys"] = [*entry["Keys"], *keys]
    return with_document(answer, {**document, "UnprocessedKeys": unprocessed})


async def batch_write(ex: Exchange) -> Answer:
    if not (ex.plan.injects("unprocessed") or ex.plan.conflict or ex.plan.lag_ms):
        return await ex.forward()
    request = json.loads(ex.body)
    kept, withheld = withhold(ex, request["RequestItems"])
    if withheld and not kept:
        ex.inject("throttle")
        return throughput_exceeded()
    refs = await batch_refs(ex, kept)
    hold = ex.state.in_flight.hold(refs, transactional=False) if ex.plan.conflict else None
    try:
        body = json.dumps({**request, "RequestItems": kept}).encode() if withheld else None
        answer = await ex.forward(body)
    finally:
        if hold is not None:
            ex.state.in_flight.release(hold)
    mirror(ex, refs)
    if not withheld or answer.status != 200:
        return answer
    ex.inject("unprocessed", sum(map(len, withheld.values())))
    document = answer.json()
    unprocessed = document.get("UnprocessedItems") or {}
    for table, entries in withheld.items():
        unprocessed[table] = [*unprocessed.get(table, []), *entries]
    return with_document(answer, {**document, "UnprocessedItems": unprocessed})


async def batch_refs(ex: Exchange, by_table: dict[str, list[Any]]) -> list[ItemRef]:
    if not (ex.plan.conflict or ex.plan.lag_ms):
        return []
    request = {"RequestItems": by_table}
    return await written_items("BatchWriteItem", request, ex.state.schemas, ex.headers)


def mirror(ex: Exchange, refs: list[ItemRef]) -> None:
    """Index lag: the shadows of these items' tables follow them, a moment later."""
    if ex.plan.lag_ms:
        ex.state.lag.written(refs, ex.headers, ex.state.lag_seconds)
