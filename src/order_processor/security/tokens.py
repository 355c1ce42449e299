"""TokenManager: HS256 JWTs through python-jose, with the algorithm pinned."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import ExpiredSignatureError, JWTError, jwt

from order_processor.domain.base import utc_now
from order_processor.exceptions import TokenExpiredException, TokenInvalidException

MIN_SECRET_BYTES = 32
ROLES = frozenset({"customer", "admin", "service"})
REQUIRED_CLAIMS = {"require_exp": True, "require_iat": True, "require_sub": True}


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    role: str
    issued_at: datetime
    expires_at: datetime
    token_id: str


class TokenManager:
    def __init__(
        self,
        secret: str,
        *,
        algorithm: str = "HS256",
        lifetime: timedelta = timedelta(minutes=30),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        if algorithm not in {"HS256", "HS384", "HS512"}:
            raise ValueError(f"unsupported JWT algorithm {algorithm}")
        self._secret = secret
        self._algorithm = algorithm
        self._lifetime = lifetime
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenManager(algorithm={self._algorithm!r}, lifetime={self._lifetime})"

    def create_access_token(
        self, subject: str, role: str = "customer", expires_delta: timedelta | None = None
    ) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        issued = self._clock()
        claims = {
            "sub": subject,
            "role": role,
            "iat": int(issued.timestamp()),
            "exp": int((issued + (expires_delta or self._lifetime)).timestamp()),
            "jti": secrets.token_hex(16),
        }
        token: str = jwt.encode(claims, self._secret, algorithm=self._algorithm)
        return token

    def verify_access_token(self, token: str) -> TokenClaims:
        """Signature, algorithm (only the pinned one: `none` and others are refused),
        and the required claims; an expired token raises TokenExpiredException."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[self._algorithm], options=REQUIRED_CLAIMS
            )
        except ExpiredSignatureError as exc:
            raise TokenExpiredException("the token has expired") from exc
        except JWTError as exc:
            raise TokenInvalidException(f"the token is not valid: {exc}") from exc
        return _claims(claims)

    def decode_token_payload(self, token: str) -> dict[str, Any]:
        """The claims WITHOUT verifying the signature: for diagnostics only, never for
        deciding access."""
        try:
            claims: dict[str, Any] = jwt.get_unverified_claims(token)
        except JWTError as exc:
            raise TokenInvalidException(f"the token cannot be decoded: {exc}") from exc
        return claims

    def is_token_expired(self, token: str) -> bool:
        """True when the (unverified) expiry has passed, or the token has none."""
        try:
            expiry = self.decode_token_payload(token).get("exp")
        except TokenInvalidException:
            return True
        if not isinstance(expiry, int | float):
            return True
        return datetime.fromtimestamp(expiry, UTC) <= self._clock()


def _claims(claims: dict[str, Any]) -> TokenClaims:
    role = claims.get("role")
    if role not in ROLES:
        raise TokenInvalidException(f"the token's role {role!r} is not one this service knows")
    try:
        return TokenClaims(
            subject=str(claims["sub"]),
            role=str(role),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            token_id=str(claims.get("jti", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenInvalidException("the token's claims are malformed") from exc
