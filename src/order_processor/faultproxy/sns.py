"""SNS PublishBatch's partial failures (query protocol: a form body, an XML answer).

Each entry is withheld with the `partial` rate; the others are forwarded, renumbered,
and the answer lists the withheld ones in `Failed` as SNS reports an entry it failed on
its side (`InternalError`, SenderFault false) beside the upstream's `Successful`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from order_processor.faultproxy.errors import SNS_XMLNS, Answer, request_id
from order_processor.faultproxy.exchange import Exchange

ENTRY = re.compile(r"^PublishBatchRequestEntries\.member\.(\d+)\.(.+)$")
Fields = list[tuple[str, str]]


async def answer(ex: Exchange) -> Answer:
    if ex.call.operation != "PublishBatch" or not ex.plan.injects("partial"):
        return await ex.forward()
    common, entries = parse_entries(ex.body.decode())
    kept, failed = [], []
    for entry in entries:
        if ex.draw("partial"):
            failed.append(
                {
                    "Id": dict(entry)["Id"],
                    "Code": "InternalError",
                    "Message": "Internal Error",
                    "SenderFault": "false",
                }
            )
        else:
            kept.append(entry)
    if not failed:
        return await ex.forward()
    ex.inject("partial", len(failed))
    if not kept:
        return publish_batch_answer(200, [], failed)
    upstream = await ex.forward(urlencode(common + renumbered(kept)).encode())
    if upstream.status != 200:
        return upstream
    successful, upstream_failed = parse_results(upstream.body)
    return publish_batch_answer(200, successful, upstream_failed + failed)


def parse_entries(form: str) -> tuple[Fields, list[Fields]]:
    """(the other parameters, each entry's fields in its order)."""
    common: Fields = []
    entries: dict[int, Fields] = {}
    for name, value in parse_qsl(form, keep_blank_values=True):
        found = ENTRY.match(name)
        if found:
            entries.setdefault(int(found.group(1)), []).append((found.group(2), value))
        else:
            common.append((name, value))
    return common, [entries[n] for n in sorted(entries)]


def renumbered(entries: list[Fields]) -> Fields:
    return [
        (f"PublishBatchRequestEntries.member.{n}.{name}", value)
        for n, entry in enumerate(entries, start=1)
        for name, value in entry
    ]


def parse_results(body: bytes) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    # The emulator's own answer, so no untrusted XML is read here.
    root = ElementTree.fromstring(body)  # noqa: S314
    found: dict[str, list[dict[str, str]]] = {"Successful": [], "Failed": []}
    for element in root.iter():
        part = _local(element.tag)
        if part in found:
            for member in element:
                found[part].append({_local(f.tag): f.text or "" for f in member})
    return found["Successful"], found["Failed"]


def publish_batch_answer(
    status: int, successful: list[dict[str, str]], failed: list[dict[str, str]]
) -> Answer:
    rid = request_id()
    body = (
        f'<PublishBatchResponse xmlns="{SNS_XMLNS}"><PublishBatchResult>'
        f"<Successful>{_members(successful)}</Successful><Failed>{_members(failed)}</Failed>"
        f"</PublishBatchResult><ResponseMetadata><RequestId>{rid}</RequestId>"
        "</ResponseMetadata></PublishBatchResponse>"
    )
    return Answer(status, body.encode(), {"Content-Type": "text/xml", "x-amzn-RequestId": rid})


def _members(entries: list[dict[str, str]]) -> str:
    return "".join(
        "<member>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in entry.items()) + "</member>"
        for entry in entries
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
