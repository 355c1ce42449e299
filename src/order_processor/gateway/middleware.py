"""What every request goes through, as one pure ASGI middleware (no BaseHTTPMiddleware:
it would buffer the event stream):

- a request id (`X-Request-ID`: a sane one the client sent, else a new one) on the
  response, in the scope's state and in every log line of the request (structlog's
  contextvars);
- the per-address rate limit (429 + Retry-After), an IPv6 address counted by its /64
  (`state.network`, which the login lockout and the stream caps count by too);
- a body: at most `max_body_bytes`, counted while it is read (a missing or lying
  Content-Length, a chunked body: the same 413), JSON (415 otherwise), no object of it
  naming a field twice (400);
- one structured access line per request: method, route, status, duration, user,
  address; never a header (no token reaches a log line);
- an unexpected error: 500 with the request id alone, its traceback in the log only.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog

from order_processor.domain.ports import MetricsSink
from order_processor.gateway.problems import ProblemType, problem_response
from order_processor.gateway.ratelimit import RateLimiter, network_of, retry_after

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("order_processor.gateway.access")
log = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPES = re.compile(r"application/(?:[\w.+-]+\+)?json\s*(?:;.*)?", re.IGNORECASE)


class BodyTooLarge(Exception):
    pass


@dataclass
class _Exchange:
    """One request as the middleware follows it."""

    scope: Scope
    send: Send
    request_id: str
    started: float
    status: int = 0

    async def answer(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):
                headers.append((b"x-request-id", self.request_id.encode()))
            message = {**message, "headers": headers}
        await self.send(message)

    async def problem(
        self, kind: ProblemType, detail: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        response = problem_response(
            self.request_id, self.scope.get("path"), kind, detail, headers=headers
        )
        await response(self.scope, _no_body, self.answer)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


@dataclass
class GatewayMiddleware:
    app: ASGIApp
    max_body_bytes: int
    per_address: RateLimiter
    metrics: MetricsSink

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, send, _request_id(scope), time.perf_counter())
        state = scope.setdefault("state", {})
        state["request_id"] = exchange.request_id
        state["address"] = address = _address(scope)
        state["network"] = network = network_of(address)
        structlog.contextvars.bind_contextvars(request_id=exchange.request_id)
        try:
            await self._handle(exchange, receive, network)
        except Exception:
            log.exception("request failed unexpectedly")
            if not exchange.status:
                await exchange.problem(ProblemType.INTERNAL, "see the gateway's log")
        finally:
            self._account(exchange, state)
            structlog.contextvars.unbind_contextvars("request_id", "username")

    async def _handle(self, exchange: _Exchange, receive: Receive, network: str) -> None:
        wait = self.per_address.take(network)
        if wait:
            headers = {"Retry-After": retry_after(wait)}
            await exchange.problem(ProblemType.TOO_MANY_REQUESTS, "slow down", headers)
            return
        if exchange.scope["method"] in BODY_METHODS:
            try:
                body = await self._body(exchange.scope, receive)
            except BodyTooLarge:
                detail = f"the body may hold at most {self.max_body_bytes} bytes"
                await exchange.problem(ProblemType.TOO_LARGE, detail)
                return
            if body and not JSON_TYPES.fullmatch(_header(exchange.scope, b"content-type")):
                detail = "send the body as application/json"
                await exchange.problem(ProblemType.UNSUPPORTED_MEDIA_TYPE, detail)
                return
            if twice := _named_twice(body):
                detail = f"the body names {twice} twice: which one was meant is unclear"
                await exchange.problem(ProblemType.BAD_REQUEST, detail)
                return
            receive = _replay(body, receive)
        await self.app(exchange.scope, receive, exchange.answer)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _account(self, exchange: _Exchange, state: dict[str, Any]) -> None:
        """The access line and the metrics of one request (499: the client left first)."""
        seconds = time.perf_counter() - exchange.started
        method, route = str(exchange.scope.get("method")), _route(exchange.scope)
        status = exchange.status or 499
        access_log.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "user": state.get("username"),
                "address": state.get("address"),
                "request_id": exchange.request_id,
            },
        )
        self.metrics.inc("gateway_requests_total", method=method, route=route, status=str(status))
        self.metrics.observe("gateway_request_seconds", seconds, route=route)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read once, then the client's own messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _NamedTwice(ValueError):
    pass


def _distinct(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) < len(names):
        raise _NamedTwice(next(n for n in names if names.count(n) > 1))
    return dict(pairs)


def _named_twice(body: bytes) -> str | None:
    """A field a JSON object of the body names twice (parsers disagree on which value
    counts: a proxy may check one, the gateway act on the other); None when there is none
    or the body is not JSON (the route answers that)."""
    if not body:
        return None
    try:
        json.loads(body, object_pairs_hook=_distinct)
    except _NamedTwice as twice:
        return json.dumps(str(twice))
    except (ValueError, RecursionError):
        return None
    return None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return ""


def _request_id(scope: Scope) -> str:
    given = _header(scope, b"x-request-id")
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _route(scope: Scope) -> str:
    """The route's template (`/v1/orders/{order_id}`): ids stay out of the metrics."""
    return getattr(scope.get("route"), "path", None) or "unmatched"
