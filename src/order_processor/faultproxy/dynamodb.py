"""DynamoDB's faults that depend on what a request holds: transaction conflicts, request
tokens, unprocessed batch keys and items, and index lag (lag.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from order_processor.faultproxy import batches
from order_processor.faultproxy.batches import mirror
from order_processor.faultproxy.conflicts import (
    ItemRef,
    cancellation_message,
    cancellation_reasons,
)
from order_processor.faultproxy.errors import Answer, dynamodb_error, with_document
from order_processor.faultproxy.exchange import Exchange
from order_processor.faultproxy.items import SINGLE_WRITES, written_items
from order_processor.faultproxy.tokens import (
    InProgress,
    Mismatch,
    Replay,
    request_digest,
)
from order_processor.faultproxy.upstream import UpstreamError

ONGOING = "Transaction is ongoing for the item"


async def answer(ex: Exchange) -> Answer:
    operation = ex.call.operation
    if operation == "TransactWriteItems":
        return await transact_write(ex)
    if operation in SINGLE_WRITES:
        return await single_write(ex)
    if operation == "BatchWriteItem":
        return await batches.batch_write(ex)
    if operation == "BatchGetItem" and ex.plan.injects("unprocessed"):
        return await batches.batch_get(ex)
    if operation == "TransactGetItems" and ex.plan.conflict:
        return await transact_get(ex)
    if operation in ("Query", "Scan") and ex.plan.lag_ms and b'"IndexName"' in ex.body:
        return await lagged_read(ex)
    if operation in ("CreateTable", "DeleteTable"):
        return await table_change(ex)
    return await ex.forward()


def tracks_items(ex: Exchange) -> bool:
    return ex.plan.conflict or bool(ex.plan.lag_ms)


async def transact_write(ex: Exchange) -> Answer:
    request = json.loads(ex.body)
    refs = []
    if tracks_items(ex):
        refs = await written_items("TransactWriteItems", request, ex.state.schemas, ex.headers)
    token = request.pop("ClientRequestToken", None)
    if token is not None:
        claim = ex.state.tokens.claim(token, request_digest(request), time.monotonic())
        if isinstance(claim, Replay):
            ex.inject("token-replay")
            return claim.answer
        if isinstance(claim, Mismatch):
            return dynamodb_error(
                "IdempotentParameterMismatchException",
                "Request token already used for a different request.",
                message_key="Message",
            )
        if isinstance(claim, InProgress):
            return dynamodb_error(
                "TransactionInProgressException",
                "The transaction with the given request token is already in progress.",
                message_key="Message",
            )
    try:
        answer = await _committed_transaction(ex, request, refs)
    except BaseException:
        if token is not None:
            ex.state.tokens.settle(token, Answer(500, b""))
        raise
    if token is not None:
        ex.state.tokens.settle(token, answer)
    return answer


async def _committed_transaction(ex: Exchange, request: Any, refs: list[ItemRef]) -> Answer:
    """Forwarded without its token: the proxy answers replays, and the emulator's own
    token check compares a normalised copy, refusing an identical retry."""
    conflicting = ex.state.in_flight.held_by_transaction(refs) if ex.plan.conflict else []
    if any(conflicting):
        return _cancelled(ex, conflicting)
    hold = ex.state.in_flight.hold(refs, transactional=True) if ex.plan.conflict else None
    try:
        answer = await ex.forward(json.dumps(request).encode())
        if hold is not None and ex.plan.hold_ms:
            await asyncio.sleep(ex.plan.hold_ms / 1000)
    finally:
        if hold is not None:
            ex.state.in_flight.release(hold)
    mirror(ex, refs)
    return answer


async def single_write(ex: Exchange) -> Answer:
    if not tracks_items(ex):
        return await ex.forward()
    request = json.loads(ex.body)
    refs = await written_items(ex.call.operation, request, ex.state.schemas, ex.headers)
    if not ex.plan.conflict:
        answer = await ex.forward()
        mirror(ex, refs)
        return answer
    if any(ex.state.in_flight.held_by_transaction(refs)):
        ex.inject("conflict")
        return dynamodb_error("TransactionConflictException", ONGOING)
    hold = ex.state.in_flight.hold(refs, transactional=False)
    try:
        answer = await ex.forward()
    finally:
        ex.state.in_flight.release(hold)
    mirror(ex, refs)
    return answer


async def transact_get(ex: Exchange) -> Answer:
    request = json.loads(ex.body)
    refs = await written_items("TransactGetItems", request, ex.state.schemas, ex.headers)
    conflicting = ex.state.in_flight.held_by_any_write(refs)
    if not any(conflicting):
        return await ex.forward()
    return _cancelled(ex, conflicting)


def _cancelled(ex: Exchange, conflicting: list[bool]) -> Answer:
    """A transaction cancelled for the items another request in flight holds."""
    ex.inject("conflict")
    reasons = cancellation_reasons(conflicting)
    return dynamodb_error(
        "TransactionCanceledException",
        cancellation_message(reasons),
        message_key="Message",
        extra={"CancellationReasons": reasons},
    )


async def lagged_read(ex: Exchange) -> Answer:
    request = json.loads(ex.body)
    table = request.get("TableName", "")
    if "IndexName" not in request or request.get("ConsistentRead"):
        return await ex.forward()  # a strongly consistent read of a local index
    try:
        shadow = await ex.state.lag.shadow_of(table, ex.headers)
    except (LookupError, UpstreamError):  # no such table: the emulator says so
        return await ex.forward()
    ex.inject("lagged-read")
    answer = await ex.forward(json.dumps({**request, "TableName": shadow}).encode())
    if shadow.encode() not in answer.body:
        return answer
    document = json.loads(answer.body.replace(shadow.encode(), table.encode()))
    return with_document(answer, document)


async def table_change(ex: Exchange) -> Answer:
    answer = await ex.forward()
    if answer.status != 200:
        return answer
    request = json.loads(ex.body)
    table = request["TableName"]
    if ex.call.operation == "CreateTable":
        ex.state.schemas.learn(table, request["KeySchema"])
    else:
        ex.state.schemas.forget(table)
        await ex.state.lag.drop(table, ex.headers)
    return answer
