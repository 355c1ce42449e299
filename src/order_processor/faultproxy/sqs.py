"""SQS's faults that depend on what a request holds: partial batch failures and duplicate
deliveries on standard queues (redelivery.py).

A batch entry is withheld with the `partial` rate and reported in `Failed` as SQS reports
an entry it failed on its side (`InternalError`, SenderFault false); a delete or
visibility change, with the `stale-receipt` rate, as one whose receipt handle is no
longer valid (`ReceiptHandleIsInvalid`, SenderFault true). The other entries are
forwarded, and the answers merged; a batch with nothing left is answered by the proxy.
"""

from __future__ import annotations

import json
from typing import Any

from order_processor.faultproxy.errors import Answer, sqs_answer, with_document
from order_processor.faultproxy.exchange import Exchange
from order_processor.faultproxy.redelivery import HANDLE_PREFIX

BATCHES = frozenset({"SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"})
BY_HANDLE = frozenset({"DeleteMessage", "ChangeMessageVisibility"})


async def answer(ex: Exchange) -> Answer:
    operation = ex.call.operation
    redeliveries = ex.state.redeliveries
    issued = redeliveries.any_issued and HANDLE_PREFIX.encode() in ex.body
    if operation == "ReceiveMessage" and (ex.plan.injects("duplicate") or redeliveries.any_waiting):
        return await receive(ex)
    if operation in BATCHES and (
        issued or ex.plan.injects("partial") or ex.plan.injects("stale-receipt")
    ):
        return await batch(ex)
    if operation in BY_HANDLE and issued:
        handle = json.loads(ex.body).get("ReceiptHandle", "")
        if redeliveries.issued(handle):
            return sqs_answer(200, {})
    return await ex.forward()


async def receive(ex: Exchange) -> Answer:
    request = json.loads(ex.body)
    queue_url = request.get("QueueUrl", "")
    if queue_url.endswith(".fifo"):  # FIFO queues deliver exactly once
        return await ex.forward()
    redeliveries = ex.state.redeliveries
    waiting = redeliveries.waiting(queue_url)
    # Messages already due are answered without a long poll's wait.
    body = json.dumps({**request, "WaitTimeSeconds": 0}).encode() if waiting else None
    answer = await ex.forward(body)
    if answer.status != 200:
        return answer
    document = answer.json()
    messages: list[Any] = document.get("Messages", [])
    room = int(request.get("MaxNumberOfMessages", 1)) - len(messages)
    again = redeliveries.take(queue_url, room)
    for message in messages:
        if ex.draw("duplicate"):
            redeliveries.remember(queue_url, message)
    if not again:
        return answer
    ex.inject("duplicate", len(again))
    return with_document(answer, {**document, "Messages": [*messages, *again]})


async def batch(ex: Exchange) -> Answer:
    request = json.loads(ex.body)
    kept, handled, failed = [], [], []
    for entry in request.get("Entries", []):
        if ex.state.redeliveries.issued(entry.get("ReceiptHandle", "")):
            handled.append({"Id": entry["Id"]})
        elif "ReceiptHandle" in entry and ex.draw("stale-receipt"):
            ex.inject("stale-receipt")
            failed.append(stale_receipt(entry))
        elif ex.draw("partial"):
            ex.inject("partial")
            failed.append(internal_failure(entry))
        else:
            kept.append(entry)
    if not (handled or failed):
        return await ex.forward()
    if not kept:
        return sqs_answer(200, {"Successful": handled, "Failed": failed})
    answer = await ex.forward(json.dumps({**request, "Entries": kept}).encode())
    if answer.status != 200:
        return answer
    document = answer.json()
    return with_document(
        answer,
        {
            **document,
            "Successful": [*document.get("Successful", []), *handled],
            "Failed": [*document.get("Failed", []), *failed],
        },
    )


def internal_failure(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": entry["Id"],
        "SenderFault": False,
        "Code": "InternalError",
        "Message": "An internal error occurred.",
    }


def stale_receipt(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": entry["Id"],
        "SenderFault": True,
        "Code": "ReceiptHandleIsInvalid",
        "Message": f'The receipt handle "{entry["ReceiptHandle"]}" is not valid.',
    }
