"""`Authorization: Bearer <token>` only (a token in a query string would land in access
logs): a current customer token, verified by the TokenManager, or 401 with
`WWW-Authenticate`. A service's or an admin's token is not a customer's. The user's own
rate limit is taken here, where the user is known."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from order_processor.exceptions import TokenExpiredException, TokenInvalidException
from order_processor.gateway.deps import Runtime, runtime_of
from order_processor.gateway.problems import Problem, ProblemType
from order_processor.gateway.ratelimit import retry_after

CUSTOMER = "customer"
# Declares the scheme in the OpenAPI document; the checks (and their 401s) are ours.
BEARER = HTTPBearer(auto_error=False, description="A customer token from POST /v1/sessions")


@dataclass(frozen=True)
class Customer:
    username: str
    token: str  # carried as the commands' `auth`: admission verifies it again


def _refused(error: str, description: str) -> Problem:
    challenge = f'Bearer realm="order-processor", error="{error}"'
    return Problem(ProblemType.UNAUTHORIZED, description, headers={"WWW-Authenticate": challenge})


async def customer(
    request: Request,
    runtime: Annotated[Runtime, Depends(runtime_of)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> Customer:
    if credentials is None or not credentials.credentials.strip():
        raise _refused("invalid_request", "send a customer token: Authorization: Bearer <token>")
    token = credentials.credentials.strip()
    try:
        claims = runtime.gateway.tokens.verify_access_token(token)
    except TokenExpiredException:
        raise _refused("invalid_token", "the token has expired") from None
    except TokenInvalidException:
        raise _refused("invalid_token", "the token is not valid") from None
    if claims.role != CUSTOMER or claims.command is not None:
        raise _refused("invalid_token", "the token is not a customer's")
    request.state.username = claims.subject
    structlog.contextvars.bind_contextvars(username=claims.subject)
    wait = runtime.per_user.take(claims.subject)
    if wait:
        raise Problem(
            ProblemType.TOO_MANY_REQUESTS,
            "slow down",
            headers={"Retry-After": retry_after(wait)},
        )
    return Customer(claims.subject, token)


Authenticated = Annotated[Customer, Depends(customer)]
