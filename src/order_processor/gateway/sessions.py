"""`POST /v1/sessions`: a customer token for a username and password.

Failed logins are counted per username (whether it exists or not) and per address; a
username (or an address) past its limit is locked for the lockout: 429 with Retry-After,
the same answer whether the user exists or not, before any password is checked. A wrong
password and an unknown user answer the same 401 after the same bcrypt work. At most
`LOGINS_IN_FLIGHT_PER_ADDRESS` logins of an address are checked at once (429 beyond)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from order_processor.domain.users import normalise_username
from order_processor.gateway.deps import Runtime, runtime_of
from order_processor.gateway.models import Session, SessionRequest
from order_processor.gateway.problems import Problem, ProblemType, problem_responses
from order_processor.gateway.ratelimit import retry_after

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
# A login's password check (bcrypt) is its cost: the failures that lock an address are
# counted after it, so a burst would have every request checked before the first counts.
LOGINS_IN_FLIGHT_PER_ADDRESS = 2
Running = Annotated[Runtime, Depends(runtime_of)]


@router.post(
    "",
    response_model=Session,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 500),
    summary="Log in: a customer token for a username and password",
)
async def create_session(body: SessionRequest, request: Request, runtime: Running) -> Session:
    network = str(request.state.network)
    in_flight = runtime.logins_in_flight
    if in_flight[network] >= LOGINS_IN_FLIGHT_PER_ADDRESS:
        raise Problem(
            ProblemType.TOO_MANY_REQUESTS,
            "a login from this address is in progress: try again in a moment",
            headers={"Retry-After": "1"},
        )
    in_flight[network] += 1
    try:
        return await _log_in(body, request, runtime)
    finally:
        in_flight[network] -= 1
        if in_flight[network] <= 0:
            del in_flight[network]


async def _log_in(body: SessionRequest, request: Request, runtime: Runtime) -> Session:
    gateway = runtime.gateway
    username = normalise_username(body.username)
    address = str(request.state.address)
    keys = (f"user:{username}", f"address:{request.state.network}")
    attempts = (runtime.user_attempts, runtime.address_attempts)
    locked = max(
        [await counter.locked_for(key) for counter, key in zip(attempts, keys, strict=False)]
    )
    if locked:
        gateway.audit.log_login_failure(username, "locked out", source_ip=address)
        raise _locked(locked)
    user = await gateway.reads.authenticate(username, body.password)
    if user is None:
        locked = max(
            [await counter.failed(key) for counter, key in zip(attempts, keys, strict=False)]
        )
        gateway.audit.log_login_failure(username, "invalid credentials", source_ip=address)
        if locked:
            gateway.audit.log_lockout(username, locked, source_ip=address)
        raise Problem(ProblemType.UNAUTHORIZED, "invalid username or password")
    await runtime.user_attempts.cleared(keys[0])
    token = gateway.tokens.create_access_token(user.username)
    lifetime = gateway.tokens.policy.customer_lifetime
    claims = gateway.tokens.verify_access_token(token)
    gateway.audit.log_login_success(user.username, source_ip=address)
    gateway.audit.log_token_created(user.username, claims.role, claims.expires_at)
    return Session(access_token=token, expires_in=int(lifetime.total_seconds()))


def _locked(seconds: float) -> Problem:
    return Problem(
        ProblemType.TOO_MANY_REQUESTS,
        "too many failed logins: try again later",
        headers={"Retry-After": retry_after(seconds)},
    )
