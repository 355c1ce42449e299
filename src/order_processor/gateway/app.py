"""`create_app(gateway)`: the HTTP API over the gateway's ports. Nothing is built at
import time; everything the app keeps while it serves (rate buckets, login counters, the
stream's dispatcher) is made here, for this app alone."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from order_processor.gateway import accounts, orders, sessions, stream
from order_processor.gateway.deps import Gateway, Runtime
from order_processor.gateway.memory import MemoryAttempts
from order_processor.gateway.middleware import GatewayMiddleware
from order_processor.gateway.problems import PROBLEM_JSON, answer_problems
from order_processor.gateway.ratelimit import RateLimiter
from order_processor.gateway.stream import Dispatcher

TITLE = "order-processor gateway"
VERSION = "1"
DESCRIPTION = (
    "Log in, place and follow orders, read balances, portfolio and prices, withdraw. "
    "Every error is an RFC 9457 problem (application/problem+json). Authenticate with "
    "`Authorization: Bearer <token>` from `POST /v1/sessions`."
)


def create_app(gateway: Gateway) -> FastAPI:
    limits = gateway.limits
    runtime = Runtime(
        gateway=gateway,
        per_user=RateLimiter(limits.rate_per_user, limits.burst_per_user),
        user_attempts=gateway.login_attempts(),
        address_attempts=MemoryAttempts(
            limits.login_attempts_per_address, limits.login_lockout_seconds
        ),
        dispatcher=Dispatcher(gateway.read_model, limits),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await runtime.dispatcher.stop()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    for module in (sessions, orders, accounts, stream):
        app.include_router(module.router)
    answer_problems(app)
    app.add_middleware(
        GatewayMiddleware,
        max_body_bytes=limits.max_body_bytes,
        per_address=RateLimiter(limits.rate_per_address, limits.burst_per_address),
        metrics=gateway.metrics,
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the problems' media type (it names application/json)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        response["content"] = {PROBLEM_JSON: content["application/json"]}
        app.openapi_schema = schema
    return app.openapi_schema
