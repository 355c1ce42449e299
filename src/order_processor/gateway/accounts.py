"""A user's money: balances, portfolio, withdrawals; and the prices.

Balances and the portfolio are cached whole in the read model under the user's
generation: the generation is read BEFORE the DynamoDB read, so a fill that raced an
event (which bumps it) is refused and never caches the state from before the event.
Prices are one document, kept a few seconds by the model."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel

from order_processor.domain.commands import FundsPayload, Withdraw, document_digest
from order_processor.domain.portfolio import Portfolio
from order_processor.gateway.auth import Authenticated
from order_processor.gateway.deps import Gateway, Runtime, runtime_of
from order_processor.gateway.idempotency import IdempotencyKey, sent_once
from order_processor.gateway.models import (
    Balances,
    BalanceView,
    Prices,
    PriceView,
    WithdrawalAccepted,
)
from order_processor.gateway.ports import Receipt
from order_processor.gateway.problems import AUTHENTICATED, problem_responses
from order_processor.readmodel.ports import Document, ReadModelUnavailable

router = APIRouter(prefix="/v1", tags=["accounts"])
Running = Annotated[Runtime, Depends(runtime_of)]
JSON = "application/json"


@router.get(
    "/balances",
    response_model=Balances,
    responses=problem_responses(*AUTHENTICATED),
    summary="The user's balance in each currency",
)
async def balances(user: Authenticated, runtime: Running) -> Response:
    gateway = runtime.gateway

    async def load() -> BaseModel:
        found = await gateway.reads.balances(user.username)
        views = [
            BalanceView(currency=b.currency, available=b.available, held=b.held) for b in found
        ]
        return Balances(balances=views)

    return _json(await _document(gateway, user.username, Document.BALANCES, load))


@router.get(
    "/portfolio",
    response_model=Portfolio,
    responses=problem_responses(*AUTHENTICATED),
    summary="The user's cash and holdings at current prices",
)
async def portfolio(user: Authenticated, runtime: Running) -> Response:
    gateway = runtime.gateway

    async def load() -> BaseModel:
        return await gateway.reads.portfolio(user.username)

    return _json(await _document(gateway, user.username, Document.PORTFOLIO, load))


@router.get(
    "/prices",
    response_model=Prices,
    responses=problem_responses(*AUTHENTICATED),
    summary="Every listed asset's price",
)
async def prices(user: Authenticated, runtime: Running) -> Response:
    model = runtime.gateway.read_model
    try:
        cached = await model.prices()
    except ReadModelUnavailable:
        cached, model_up = None, False
    else:
        model_up = True
    if cached is not None:
        return _json(cached)
    assets = await runtime.gateway.reads.prices()
    body = Prices(
        prices=[
            PriceView(
                asset_id=a.asset_id,
                name=a.name,
                price=a.price,
                quote_currency=a.quote_currency,
                price_as_of=a.price_as_of,
            )
            for a in assets
        ]
    ).model_dump_json()
    if model_up:
        with contextlib.suppress(ReadModelUnavailable):
            await model.fill_prices(body)
    return _json(body)


@router.post(
    "/withdrawals",
    status_code=202,
    response_model=WithdrawalAccepted,
    responses=problem_responses(400, *AUTHENTICATED, 409, 413, 415, 503),
    summary="Withdraw an amount of a currency; the outcome comes as an event",
)
async def withdraw(
    body: FundsPayload, key: IdempotencyKey, user: Authenticated, runtime: Running
) -> Response:
    command = Withdraw(command_id=key, username=user.username, auth=user.token, payload=body)
    accepted = WithdrawalAccepted(withdrawal_id=key, currency=body.currency, amount=body.amount)
    receipt = Receipt(
        document_digest({"withdrawal": body.model_dump(mode="json")}), accepted.model_dump_json()
    )
    return await sent_once(
        runtime.gateway,
        user.username,
        key,
        receipt,
        command,
        lambda kept: Response(kept, status_code=202, media_type=JSON),
    )


async def _document(
    gateway: Gateway,
    username: str,
    kind: Document,
    load: Callable[[], Awaitable[BaseModel]],
) -> str:
    model = gateway.read_model
    try:
        cached = await model.document(username, kind)
        if cached is not None:
            return cached
        generation: int | None = await model.generation(username)
    except ReadModelUnavailable:
        generation = None
    body = (await load()).model_dump_json()
    if generation is not None:
        with contextlib.suppress(ReadModelUnavailable):
            await model.fill_document(username, kind, body, generation)
    return body


def _json(body: str) -> Response:
    return Response(body, media_type=JSON)
