"""TokenManager: HS256 JWTs through python-jose, with the algorithm pinned and lifetimes bounded.

`verify_access_token` runs on attacker-controlled input (every command's `auth`), so for
any object whatsoever it either returns `TokenClaims` or raises `TokenExpiredException` /
`TokenInvalidException`, and it rejects hostile input cheaply, before any deep work:

1. a `str` of at most 4,096 ASCII characters, exactly three base64url segments
   (canonical encoding, no padding), a header segment of at most 1,024 characters;
2. the header, decoded here (not by python-jose, whose JSON parse of a deeply nested
   header escapes as RecursionError), must be a JSON object whose `alg` is the pinned
   algorithm (`none` and every other algorithm are refused) and which has no `crit`;
3. the signature, verified by python-jose (`jws.verify`) with the pinned algorithm and
   the key built once from the secret, inside a broad guard;
4. the claims, parsed and checked here against the injected clock: `sub` a plain
   identifier, `role` a known role, `iat`/`exp` (and `nbf` if present) integers in
   (0, 2**33), `exp > iat`, `exp - iat` at most the role's maximum lifetime, `iat` (and
   `nbf`) at most `clock_skew` in the future, `jti` if present a string of at most 64
   characters, `cmd` if present the 64 hex digits of the one command the token was
   minted for. An expired token (`exp <= now`) raises TokenExpiredException.

python-jose's own claim checks are not used: they read the wall clock rather than the
injected one, guard `int(claims["exp"])` against ValueError only (a list or an infinite
float escapes as TypeError/OverflowError), and accept strings and floats as timestamps.

Refusal messages name the rule that failed and never carry attacker-supplied text (no
claim value, no header content, no python-jose message) nor the secret: they reach the
`command.rejected` event and the audit log.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeGuard, cast

from jose import jwk, jws, jwt
from jose.exceptions import JOSEError

from order_processor.domain.base import utc_now
from order_processor.exceptions import TokenExpiredException, TokenInvalidException

MIN_SECRET_BYTES = 32
ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ROLES = frozenset({"customer", "admin", "service"})
SERVICE_ROLE = "service"
MAX_TOKEN_LENGTH = 4096
MAX_HEADER_SEGMENT_LENGTH = 1024
MAX_TIMESTAMP = 2**33  # exclusive; year 2242
MAX_TOKEN_ID_LENGTH = 64
SUBJECT_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_COMMAND_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    role: str
    issued_at: datetime
    expires_at: datetime
    token_id: str
    command: str | None = None  # the digest of the one command it was minted for, if any


@dataclass(frozen=True)
class TokenPolicy:
    """Token lifetimes. Customer and admin tokens are minted with `customer_lifetime` by
    default and accepted (and mintable) up to `max_lifetime` (exp - iat); service tokens
    are minted with, and accepted up to, `service_lifetime`. `iat` may lie at most
    `clock_skew` in the future."""

    customer_lifetime: timedelta = timedelta(minutes=30)
    max_lifetime: timedelta = timedelta(minutes=60)
    service_lifetime: timedelta = timedelta(minutes=5)
    clock_skew: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        second = timedelta(seconds=1)
        if min(self.customer_lifetime, self.max_lifetime, self.service_lifetime) < second:
            raise ValueError("token lifetimes must be at least one second")
        if self.customer_lifetime > self.max_lifetime:
            raise ValueError("customer_lifetime must not exceed max_lifetime")
        if self.clock_skew < timedelta(0):
            raise ValueError("clock_skew must not be negative")


DEFAULT_POLICY = TokenPolicy()


class TokenManager:
    def __init__(
        self,
        secret: str,
        *,
        algorithm: str = "HS256",
        policy: TokenPolicy = DEFAULT_POLICY,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not isinstance(secret, str) or len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported JWT algorithm; use one of {sorted(ALGORITHMS)}")
        try:
            # Built once: handing python-jose the plain string would make it try the secret
            # as JSON (a JWK or a JWK set) on every call.
            self._key = jwk.construct(secret, algorithm)
        except JOSEError:
            raise ValueError("the JWT secret is not usable as an HMAC key") from None
        self._algorithm = algorithm
        self._policy = policy
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenManager(algorithm={self._algorithm!r}, policy={self._policy!r})"

    @property
    def policy(self) -> TokenPolicy:
        return self._policy

    def max_lifetime_for(self, role: str) -> timedelta:
        """The longest exp - iat accepted (and mintable) for a role."""
        if not isinstance(role, str) or role not in ROLES:
            raise ValueError(f"unknown role; expected one of {sorted(ROLES)}")
        if role == SERVICE_ROLE:
            return self._policy.service_lifetime
        return self._policy.max_lifetime

    def create_access_token(
        self,
        subject: str,
        role: str = "customer",
        expires_delta: timedelta | None = None,
        *,
        command: str | None = None,
    ) -> str:
        """A signed token for `subject`. Negative deltas are allowed (an already expired
        token, for tests); a delta beyond the role's maximum is a ValueError. `command`
        (a digest) binds the token to that one command."""
        if command is not None and not _COMMAND_DIGEST.fullmatch(command):
            raise ValueError("a command digest is 64 lowercase hex digits")
        maximum = self.max_lifetime_for(role)
        if not isinstance(subject, str) or not SUBJECT_PATTERN.fullmatch(subject):
            raise ValueError("the subject must be 1 to 64 characters of A-Z a-z 0-9 _ . : @ -")
        lifetime = expires_delta
        if lifetime is None:  # service tokens: service_lifetime, which is also their maximum
            lifetime = maximum if role == SERVICE_ROLE else self._policy.customer_lifetime
        if lifetime > maximum:
            raise ValueError(f"a {role} token lives at most {maximum}")
        issued_at = int(self._clock().timestamp())
        claims = {
            "sub": subject,
            "role": role,
            "iat": issued_at,
            # Whole seconds, rounded down, so that exp - iat never exceeds the lifetime.
            "exp": issued_at + lifetime // timedelta(seconds=1),
            "jti": secrets.token_hex(16),
        }
        if command is not None:
            claims["cmd"] = command
        token: str = jwt.encode(claims, self._key, algorithm=self._algorithm)
        return token

    def verify_access_token(self, token: object) -> TokenClaims:
        """The claims of a genuine, current token; TokenExpiredException when it has
        expired, TokenInvalidException for anything else, whatever `token` is."""
        try:
            return self._verify(token)
        except (TokenExpiredException, TokenInvalidException):
            raise
        except Exception:  # defence in depth: nothing else may escape on hostile input
            raise TokenInvalidException("the token could not be verified") from None

    def decode_token_payload(self, token: object) -> dict[str, Any]:
        """The claims WITHOUT verifying the signature: for diagnostics only, never for
        deciding access. TokenInvalidException when they cannot be decoded."""
        try:
            _, payload, _ = _segments(token)
            return _json_object(_b64decode(payload, "payload"), "payload")
        except TokenInvalidException:
            raise
        except Exception:
            raise TokenInvalidException("the token cannot be decoded") from None

    def is_token_expired(self, token: object) -> bool:
        """True when the (unverified) expiry has passed, or the token has none."""
        try:
            expiry = self.decode_token_payload(token).get("exp")
        except TokenInvalidException:
            return True
        if not _is_timestamp(expiry):
            return True
        return bool(expiry <= self._clock().timestamp())

    def _verify(self, token: object) -> TokenClaims:
        header, _, _ = _segments(token)
        self._check_header(_json_object(_b64decode(header, "header"), "header"))
        try:
            signed_payload = jws.verify(cast(str, token), self._key, algorithms=[self._algorithm])
        except Exception:
            _invalid("the token's signature does not verify")
        claims = _json_object(signed_payload, "payload")
        return _check_claims(claims, self._clock().timestamp(), self._policy, self.max_lifetime_for)

    def _check_header(self, header: dict[str, Any]) -> None:
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm != self._algorithm:
            _invalid(f"the token's header must name the algorithm {self._algorithm}")
        if "crit" in header:
            _invalid("the token's header carries critical extensions")


def _invalid(rule: str) -> NoReturn:
    raise TokenInvalidException(rule)


def _segments(token: object) -> tuple[str, str, str]:
    """Cheap structural checks, in order of cost, before anything is decoded."""
    if not isinstance(token, str):
        _invalid("the token must be a string")
    if len(token) > MAX_TOKEN_LENGTH:
        _invalid(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
    if not token.isascii():
        _invalid("the token must be ASCII")
    parts = token.split(".")
    if len(parts) != 3:
        _invalid("the token must have three dot-separated segments")
    header, payload, signature = parts
    if not signature:
        _invalid("the token's signature segment is empty")
    if len(header) > MAX_HEADER_SEGMENT_LENGTH:
        _invalid(f"the token's header is longer than {MAX_HEADER_SEGMENT_LENGTH} characters")
    _b64decode(signature, "signature")
    return header, payload, signature


def _b64decode(segment: str, name: str) -> bytes:
    """Strict base64url without padding: alphabet, length and canonical trailing bits."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        _invalid(f"the token's {name} segment is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        _invalid(f"the token's {name} segment is not base64url")
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
        _invalid(f"the token's {name} segment is not canonical base64url")
    return data


def _refuse_constant(_: str) -> NoReturn:
    raise ValueError("NaN and Infinity are not JSON")


# Made once: `json.loads` with any option builds a decoder at every call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError, MemoryError):  # UnicodeDecodeError is a ValueError
        _invalid(f"the token's {name} is not valid JSON")
    if not isinstance(value, dict):
        _invalid(f"the token's {name} is not a JSON object")
    return value


def _is_timestamp(value: object) -> TypeGuard[int]:
    """An int (bool and float refused) within (0, 2**33)."""
    return type(value) is int and 0 < value < MAX_TIMESTAMP


def _optional_ids(claims: dict[str, Any]) -> tuple[str, str | None]:
    """`jti` (a string of at most 64 characters) and `cmd` (a command digest), if present."""
    token_id = claims.get("jti", "")
    if not isinstance(token_id, str) or len(token_id) > MAX_TOKEN_ID_LENGTH:
        _invalid(f"the token's jti must be a string of at most {MAX_TOKEN_ID_LENGTH} characters")
    command = claims.get("cmd")
    if command is not None and not (
        isinstance(command, str) and _COMMAND_DIGEST.fullmatch(command)
    ):
        _invalid("the token's cmd must be a command digest")
    return token_id, command


def _check_claims(
    claims: dict[str, Any],
    now: float,
    policy: TokenPolicy,
    max_lifetime_for: Callable[[str], timedelta],
) -> TokenClaims:
    subject, role, issued, expires = (claims.get(k) for k in ("sub", "role", "iat", "exp"))
    if not isinstance(subject, str) or not SUBJECT_PATTERN.fullmatch(subject):
        _invalid("the token's subject is missing or not a plain identifier")
    if not isinstance(role, str) or role not in ROLES:
        _invalid("the token's role is missing or not one this service knows")
    if not _is_timestamp(issued) or not _is_timestamp(expires):
        _invalid("the token's iat and exp must be integer timestamps in range")
    token_id, command = _optional_ids(claims)
    if expires <= now:
        raise TokenExpiredException("the token has expired")
    if expires <= issued:
        _invalid("the token's exp is not after its iat")
    if expires - issued > max_lifetime_for(role).total_seconds():
        _invalid("the token's lifetime exceeds the maximum for its role")
    skew = policy.clock_skew.total_seconds()
    if issued > now + skew:
        _invalid("the token's iat lies in the future")
    not_before = claims.get("nbf", issued)
    if not _is_timestamp(not_before) or not_before > now + skew:
        _invalid("the token's nbf is not an integer timestamp or lies in the future")
    return TokenClaims(
        subject=subject,
        role=role,
        issued_at=datetime.fromtimestamp(issued, UTC),
        expires_at=datetime.fromtimestamp(expires, UTC),
        token_id=token_id,
        command=command,
    )
