"""One error shape for everything: RFC 9457 problem details (`application/problem+json`).

Every refusal is a `Problem` raised (or built by a handler from Starlette's and FastAPI's
own errors); a validation error names each invalid field; an unexpected error answers 500
with the request id alone, never a traceback or an exception's text."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class ProblemType(StrEnum):
    """Each refusal's type: its `type` URI is `PROBLEM_BASE` + the value."""

    BAD_REQUEST = "bad-request"
    INVALID_REQUEST = "invalid-request"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    CONFLICT = "idempotency-conflict"
    TOO_LARGE = "body-too-large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    TOO_MANY_REQUESTS = "too-many-requests"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal-error"


PROBLEM_BASE = "https://order-processor.dev/problems/"
TITLES = {
    ProblemType.BAD_REQUEST: "Bad request",
    ProblemType.INVALID_REQUEST: "Invalid request",
    ProblemType.UNAUTHORIZED: "Unauthorized",
    ProblemType.NOT_FOUND: "Not found",
    ProblemType.METHOD_NOT_ALLOWED: "Method not allowed",
    ProblemType.CONFLICT: "Idempotency-Key reused with another request",
    ProblemType.TOO_LARGE: "Request body too large",
    ProblemType.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
    ProblemType.TOO_MANY_REQUESTS: "Too many requests",
    ProblemType.UNAVAILABLE: "Service unavailable",
    ProblemType.INTERNAL: "Internal error",
}
STATUSES = {
    ProblemType.BAD_REQUEST: 400,
    ProblemType.INVALID_REQUEST: 422,
    ProblemType.UNAUTHORIZED: 401,
    ProblemType.NOT_FOUND: 404,
    ProblemType.METHOD_NOT_ALLOWED: 405,
    ProblemType.CONFLICT: 409,
    ProblemType.TOO_LARGE: 413,
    ProblemType.UNSUPPORTED_MEDIA_TYPE: 415,
    ProblemType.TOO_MANY_REQUESTS: 429,
    ProblemType.UNAVAILABLE: 503,
    ProblemType.INTERNAL: 500,
}
_BY_STATUS = {status: kind for kind, status in STATUSES.items()}
# What any request of a user may meet: a bad token, a bad parameter, a rate, a failure.
AUTHENTICATED = (401, 422, 429, 500)


class InvalidField(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    message: str


class ProblemDetails(BaseModel):
    """The body of every error answer (RFC 9457), with the request id."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[InvalidField] | None = None


class Problem(Exception):
    """A refusal: raised anywhere in a request, answered as its problem."""

    def __init__(
        self,
        kind: ProblemType,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        errors: list[InvalidField] | None = None,
    ) -> None:
        super().__init__(detail or TITLES[kind])
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


def problem_response(
    request_id: str | None,
    path: str | None,
    kind: ProblemType,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    errors: list[InvalidField] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        type=PROBLEM_BASE + kind.value,
        title=TITLES[kind],
        status=STATUSES[kind],
        detail=detail,
        instance=path,
        request_id=request_id,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=STATUSES[kind],
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def _answer(request: Request, problem: Problem) -> JSONResponse:
    request_id = request.scope.get("state", {}).get("request_id")
    return problem_response(
        request_id,
        request.url.path,
        problem.kind,
        problem.detail,
        headers=problem.headers,
        errors=problem.errors,
    )


def field_name(location: tuple[Any, ...] | list[Any]) -> str:
    """`body.payload.limit_price` for ('body', 'limit_price'); a model's own rule's
    message names its field itself."""
    parts = [str(p) for p in location if not str(p).startswith(("function-", "tagged-union"))]
    return ".".join(parts) or "body"


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return _answer(request, exc)


async def _on_invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each invalid field; a missing or malformed header (Idempotency-Key) is
    a 400 naming the header."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        InvalidField(field=field_name(error.get("loc", ())), message=str(error.get("msg", "")))
        for error in exc.errors()
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    headers = [e for e in errors if e.field.startswith("header.")]
    kind = ProblemType.BAD_REQUEST if headers else ProblemType.INVALID_REQUEST
    return _answer(request, Problem(kind, detail, errors=headers or errors))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = _BY_STATUS.get(exc.status_code, ProblemType.BAD_REQUEST)
    detail = (
        exc.detail if isinstance(exc.detail, str) and kind is not ProblemType.NOT_FOUND else None
    )
    return _answer(request, Problem(kind, detail, headers=dict(exc.headers or {})))


def answer_problems(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(StarletteHTTPException, _on_http)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI: these statuses answer a problem (its media type set by `app`)."""
    return {
        status: {"description": TITLES[_BY_STATUS[status]], "model": ProblemDetails}
        for status in statuses
    }
