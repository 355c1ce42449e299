"""Requests under an `Idempotency-Key`: the key (the command ids' alphabet and length) IS
the command id; its first request is remembered with the answer given (`Receipts`), so a
retry with the same body gets the same answer and sends nothing new, and another body
under the key is refused (409). A command that could not be sent leaves no receipt; a
retry arriving while its first request is still sending is told so (503, Retry-After):
a 202 is never answered for a command that was not sent. The claim is kept unsent for a
short while only (`PENDING_SECONDS`), so a sender that died leaves the key free again."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated

from fastapi import Header
from fastapi.responses import Response

from order_processor.domain.commands import AnyCommand
from order_processor.gateway.deps import Gateway
from order_processor.gateway.ids import IDEMPOTENCY_KEY
from order_processor.gateway.ports import Receipt
from order_processor.gateway.problems import Problem, ProblemType

log = logging.getLogger(__name__)
HEADER = "Idempotency-Key"
IdempotencyKey = Annotated[
    str,
    Header(
        alias=HEADER,
        pattern=IDEMPOTENCY_KEY.pattern,
        description="The command's id, chosen by the client: a retry with the same key and "
        "body answers the same, another body under the key is refused (409).",
    ),
]
OptionalIdempotencyKey = Annotated[
    str | None, Header(alias=HEADER, pattern=IDEMPOTENCY_KEY.pattern)
]


async def sent_once(
    gateway: Gateway,
    username: str,
    key: str,
    receipt: Receipt,
    command: AnyCommand,
    answer: Callable[[str], Response],
    before: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """Send `command` unless the key was used: the same request is answered as it was the
    first time (`answer` of the kept body), another is a 409. `before` runs once the key
    is claimed, before the send (a retry never writes it again: the order may be further
    along than its placeholder)."""
    kept = await gateway.receipts.claim(username, key, replace(receipt, sent=False))
    if kept is not None:
        if kept.digest != receipt.digest:
            raise Problem(
                ProblemType.CONFLICT,
                f"this {HEADER} was used for another request; choose a new key",
            )
        if not kept.sent:
            raise Problem(
                ProblemType.UNAVAILABLE,
                f"the first request with this {HEADER} is still being sent; retry",
                headers={"Retry-After": "1"},
            )
        return answer(kept.answer)
    if before is not None:
        # Before the send: a worker that rejects at once must find the placeholder to fail.
        await before()
    try:
        await gateway.commands.send(command)
    except Exception as exc:
        log.warning("a command could not be queued: %s", exc)
        await gateway.receipts.release(username, key)
        raise Problem(
            ProblemType.UNAVAILABLE,
            f"the command could not be queued; retry with the same {HEADER}",
            headers={"Retry-After": "1"},
        ) from exc
    except BaseException:  # cancelled (the client left): a retry may send it
        await gateway.receipts.release(username, key)
        raise
    await gateway.receipts.sent(username, key, receipt)
    return answer(receipt.answer)
