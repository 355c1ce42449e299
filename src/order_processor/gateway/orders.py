"""Orders: place (`POST`, 202 with its URL), read, list, cancel.

The gateway mints the order id from the Idempotency-Key (`ids.order_id_for`) and sends
the command under the authenticated user: the client names neither the id nor the FIFO
group (the body's extra fields are refused). Before a worker takes the command the
order's placeholder (sequence 0, PENDING) is written to the read model, so a GET finds it
at once and a rejection, however quick, finds it to fail; the first event replaces it.
Another user's order answers 404, never 403."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from order_processor.domain.base import ID_PATTERN, ORDER_ID_MAX_LENGTH, new_id
from order_processor.domain.commands import CancelOrder, OrderReference, PlaceOrder, document_digest
from order_processor.domain.commands import PlaceOrderPayload as Payload
from order_processor.domain.orders import Order, OrderCreate, OrderResponse, OrderStatus
from order_processor.gateway.auth import Authenticated, Customer
from order_processor.gateway.deps import Gateway, Runtime, runtime_of
from order_processor.gateway.idempotency import IdempotencyKey, OptionalIdempotencyKey, sent_once
from order_processor.gateway.ids import (
    CursorRefused,
    open_cursor,
    order_id_for,
    seal_cursor,
)
from order_processor.gateway.models import OrderPage
from order_processor.gateway.ports import Receipt, UnknownCursor
from order_processor.gateway.problems import (
    AUTHENTICATED,
    Problem,
    ProblemType,
    problem_responses,
)
from order_processor.readmodel.ports import ReadModelUnavailable

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/orders", tags=["orders"])
Running = Annotated[Runtime, Depends(runtime_of)]
JSON = "application/json"
ORDER_ID = re.compile(ID_PATTERN)


def _accepted(order_id: str) -> Callable[[str], Response]:
    def answer(body: str) -> Response:
        headers = {"Location": f"/v1/orders/{order_id}"}
        return Response(body, status_code=202, media_type=JSON, headers=headers)

    return answer


@router.post(
    "",
    status_code=202,
    response_model=OrderResponse,
    responses=problem_responses(400, *AUTHENTICATED, 409, 413, 415, 503),
    summary="Place an order (every order type); its id is minted from the Idempotency-Key",
)
async def place_order(
    body: OrderCreate, key: IdempotencyKey, user: Authenticated, runtime: Running
) -> Response:
    gateway = runtime.gateway
    order_id = order_id_for(gateway.secret, user.username, key)
    order = Order.place(user.username, body, order_id)
    fields = body.model_dump(exclude_none=True)
    command = PlaceOrder(
        command_id=key,
        username=user.username,
        auth=user.token,
        payload=Payload(**fields, order_id=order_id),
    )
    digest = document_digest({"order": body.model_dump(mode="json")})
    receipt = Receipt(digest, order.response().model_dump_json())

    async def placeholder() -> None:
        await _fill(gateway, order)

    answer = _accepted(order_id)
    return await sent_once(
        gateway, user.username, key, receipt, command, answer, before=placeholder
    )


@router.get(
    "/{order_id}",
    response_model=OrderResponse,
    responses=problem_responses(*AUTHENTICATED, 404),
    summary="An order of the user's (the read model, else DynamoDB)",
)
async def get_order(order_id: str, user: Authenticated, runtime: Running) -> OrderResponse:
    return (await _own_order(runtime.gateway, user, order_id)).response()


@router.delete(
    "/{order_id}",
    status_code=202,
    response_model=OrderResponse,
    responses=problem_responses(400, *AUTHENTICATED, 404, 413, 415, 503),
    summary="Cancel an order of the user's (a resting one: the outcome comes as an event)",
)
async def cancel_order(
    order_id: str, user: Authenticated, runtime: Running, key: OptionalIdempotencyKey = None
) -> Response:
    gateway = runtime.gateway
    order = await _own_order(gateway, user, order_id)
    command = CancelOrder(
        command_id=key or new_id(),
        username=user.username,
        auth=user.token,
        payload=OrderReference(order_id=order.order_id),
    )
    try:
        await gateway.commands.send(command)
    except Exception as exc:
        log.warning("a cancel could not be queued: %s", exc)
        raise Problem(ProblemType.UNAVAILABLE, "the cancel could not be queued; retry") from exc
    return _accepted(order.order_id)(order.response().model_dump_json())


@router.get(
    "",
    response_model=OrderPage,
    responses=problem_responses(400, *AUTHENTICATED),
    summary="The user's orders, newest first, a page at a time",
)
async def list_orders(
    user: Authenticated,
    runtime: Running,
    status: OrderStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=4096)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> OrderPage:
    gateway = runtime.gateway
    scope = status.value if status else ""
    try:
        raw = open_cursor(gateway.secret, user.username, scope, cursor) if cursor else None
        page = await gateway.reads.orders(
            user.username, status, min(limit, gateway.limits.page_limit), raw
        )
    except (CursorRefused, UnknownCursor) as exc:
        raise Problem(ProblemType.BAD_REQUEST, "cursor: not one this gateway issued") from exc
    sealed = seal_cursor(gateway.secret, user.username, scope, page.cursor) if page.cursor else None
    return OrderPage(orders=[o.response() for o in page.orders], next_cursor=sealed)


async def _own_order(gateway: Gateway, user: Customer, order_id: str) -> Order:
    """The user's order from the read model, else from DynamoDB (filling the model); 404
    for another user's order as for a missing one. An entry naming another user is not
    trusted to answer for the id (an event on the cache queue may name any order): the
    user's own DynamoDB partition does."""
    if not _well_formed(order_id):
        raise _not_found()
    try:
        cached = await gateway.read_model.order(order_id)
    except ReadModelUnavailable:
        cached = None
    if cached is not None and cached.username == user.username:
        return cached
    stored = await gateway.reads.order(user.username, order_id)
    if stored is None:
        raise _not_found()
    await _fill(gateway, stored)
    return stored


async def _fill(gateway: Gateway, order: Order) -> None:
    with contextlib.suppress(ReadModelUnavailable):  # the next read fills it
        await gateway.read_model.fill_order(order)


def _well_formed(order_id: str) -> bool:
    return len(order_id) <= ORDER_ID_MAX_LENGTH and ORDER_ID.fullmatch(order_id) is not None


def _not_found() -> Problem:
    return Problem(ProblemType.NOT_FOUND, "no such order")
