"""The proxy server: every request is relayed to the upstream (the emulator) through one
keep-alive session, after a base latency, unless the plan's dice say it fails as AWS
fails. Control endpoints under /_faultproxy/ report and change what it does; anything
under /_ministack/, STS, and the control-plane operations pass untouched.

Per request, in order: latency; expired credentials; reset (the connection is cut before
anything is forwarded); throttle and 5xx (answered without forwarding); the service's
own faults (dynamodb.py, sqs.py, sns.py); lost (the upstream applied the request, its
answer is dropped and the connection closed); slow.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

import aiohttp
from aiohttp import web

from order_processor.faultproxy import dynamodb, sns, sqs
from order_processor.faultproxy.calls import identify
from order_processor.faultproxy.errors import Answer, expired_token, internal_error, throttled
from order_processor.faultproxy.exchange import Exchange, ProxyState
from order_processor.faultproxy.rates import FaultPlan, PlanError
from order_processor.faultproxy.upstream import Upstream

CONTROL = "/_faultproxy"
STATE = web.AppKey("state", ProxyState)
SERVICES: dict[str, Callable[[Exchange], Awaitable[Answer]]] = {
    "dynamodb": dynamodb.answer,
    "sqs": sqs.answer,
    "sns": sns.answer,
}


def build_app(upstream: str, plan: FaultPlan, seed: int = 0) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)

    async def start(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        app[STATE] = ProxyState.start(Upstream(upstream.rstrip("/"), session), plan, seed)

    async def stop(app: web.Application) -> None:
        await app[STATE].lag.close()
        await app[STATE].upstream.session.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_get(f"{CONTROL}/health", health)
    app.router.add_get(f"{CONTROL}/stats", stats)
    app.router.add_post(f"{CONTROL}/stats/reset", reset_stats)
    app.router.add_get(f"{CONTROL}/plan", current_plan)
    app.router.add_post(f"{CONTROL}/plan", change_plan)
    app.router.add_post(f"{CONTROL}/expire-credentials", expire_credentials)
    app.router.add_post(f"{CONTROL}/lag/catch-up", catch_up_indexes)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


async def relay(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await request.read()
    call = identify(request.headers, body)
    ex = Exchange(state, call, request.method, request.path_qs, request.headers, body)
    state.counts.requests += 1
    if state.plan.outage:
        ex.inject("outage")
        cut(request, reset=True)
    await _latency(state)
    if call.service not in SERVICES or request.path.startswith("/_ministack/"):
        return respond(await ex.forward())
    refusal = _expired(ex)
    if refusal is not None:
        return respond(refusal)
    if not call.faultable:
        return respond(await SERVICES[call.service](ex))
    if ex.draw("reset"):
        ex.inject("reset")
        cut(request, reset=True)
    if ex.draw("throttle"):
        ex.inject("throttle")
        return respond(throttled(call.service, dynamodb_code=state.plan.throttle_code))
    if ex.draw("5xx"):
        ex.inject("5xx")
        return respond(internal_error(call.service))
    answer = await SERVICES[call.service](ex)
    if ex.draw("lost"):
        ex.inject("lost")
        cut(request, reset=False)
    if ex.draw("slow"):
        ex.inject("slow")
        await asyncio.sleep(state.plan.slow_ms / 1000)
    return respond(answer)


def respond(answer: Answer) -> web.Response:
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


def cut(request: web.Request, *, reset: bool) -> NoReturn:
    """Close the client's connection without an answer: with a TCP reset, or as a
    connection dropped after the request (a FIN, no response)."""
    transport = request.transport
    if transport is not None:
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
    raise asyncio.CancelledError  # aiohttp ends the handler without writing anything


async def _latency(state: ProxyState) -> None:
    plan = state.plan
    if plan.latency_ms or plan.jitter_ms:
        delay = plan.latency_ms + state.rng.uniform(-plan.jitter_ms, plan.jitter_ms)
        await asyncio.sleep(max(0.0, delay) / 1000)


def _expired(ex: Exchange) -> Answer | None:
    """Once `expire-credentials-after` seconds have passed, the key that signs the next
    request expires (as would the assumed role's credentials it came from)."""
    state, key = ex.state, ex.call.access_key_id
    after = state.plan.expire_credentials_after
    due = after is not None and time.monotonic() - state.plan_since >= after
    if due and key and not state.scheduled_expiry_done:
        state.expired_keys.add(key)
        state.scheduled_expiry_done = True
    if key:
        state.last_key = key
    if key not in state.expired_keys:
        return None
    ex.inject("expired-credentials")
    return expired_token(ex.call.service)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].counts.document())


async def reset_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.counts = type(state.counts)()
    return web.json_response(state.counts.document())


async def current_plan(request: web.Request) -> web.Response:
    return web.json_response({"faults": request.app[STATE].plan.text()})


async def change_plan(request: web.Request) -> web.Response:
    """{"faults": "<plan>", "seed": <int, optional: reseeds the dice>}"""
    document = await request.json()
    try:
        plan = FaultPlan.parse(document.get("faults", ""))
    except PlanError as wrong:
        return web.json_response({"error": str(wrong)}, status=400)
    request.app[STATE].replan(plan, document.get("seed"))
    return web.json_response({"faults": plan.text()})


async def catch_up_indexes(request: web.Request) -> web.Response:
    """Every write on its way to a lagging index lands now."""
    return web.json_response({"copied": await request.app[STATE].lag.catch_up()})


async def expire_credentials(request: web.Request) -> web.Response:
    """{"access_key_id": "<key>"} expires that key; without it, the key seen last."""
    state = request.app[STATE]
    document = json.loads(await request.read() or b"{}")
    key = document.get("access_key_id") or state.last_key
    if key:
        state.expired_keys.add(key)
    return web.json_response({"expired": sorted(state.expired_keys)})
