"""Admission: from an SQS body to a command, or to a rejection with a reason.

Every field of a message is the sender's until its token is verified, so the order is:
size and JSON, the token (its subject is the first identity a rejection may name), the
schema, the sender's clock, and who may send what. Whatever a body contains ends as a
command or as `CommandRejected`, never as another exception: one bad message must never
hold back a user's FIFO group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from order_processor.domain.base import utc_now
from order_processor.domain.commands import (
    CUSTOMER_COMMANDS,
    SERVICE_COMMANDS,
    AnyCommand,
    CommandType,
    document_digest,
    read_document,
    validate_command,
    well_formed_id,
)
from order_processor.exceptions import (
    CommandRejected,
    Identity,
    Reason,
    TokenExpiredException,
    TokenInvalidException,
)
from order_processor.security.tokens import TokenClaims, TokenManager

log = logging.getLogger(__name__)
CUSTOMER_ROLES = frozenset({"customer", "admin"})


@dataclass(frozen=True)
class Admitted:
    """A command and who sent it: the verified token's subject (a user, or a service
    acting on a user's order), the only identity a later rejection may name."""

    command: AnyCommand
    sender: Identity


@dataclass(frozen=True)
class Admission:
    tokens: TokenManager
    clock: Callable[[], datetime] = utc_now
    clock_skew: timedelta = timedelta(seconds=30)

    def admit(self, body: str | bytes) -> Admitted:
        try:
            return self._admit(body)
        except CommandRejected:
            raise
        except Exception as exc:
            # The last line of defence: a reader's bug must still end as a rejection.
            log.exception("admission failed unexpectedly; the command is rejected")
            raise CommandRejected(Reason.INVALID_COMMAND, "the command could not be read") from exc

    def _admit(self, body: str | bytes) -> Admitted:
        document = read_document(body)
        claims = self._authenticate(document.get("auth"))
        if not bound_to(claims, document):
            # The token vouches for its subject, and for no command id of a document it
            # did not sign: a copy changed anywhere names only the subject.
            raise CommandRejected(
                Reason.UNAUTHORIZED,
                "the token was minted for another command",
                identity=Identity(claims.subject),
            )
        sender = Identity(claims.subject, well_formed_id(document.get("command_id")))
        try:
            command = dated(validate_command(document), claims)
        except CommandRejected as rejection:
            rejection.identity = sender
            raise
        sender = Identity(claims.subject, command.command_id, command.issued_at)
        if command.issued_at > self.clock() + self.clock_skew:
            raise CommandRejected(
                Reason.FUTURE_TIMESTAMP,
                f"issued_at is more than {self.clock_skew.total_seconds():.0f} s in the future",
                identity=sender,
            )
        reason = forbidden(command.type, command.username, claims)
        if reason:
            raise CommandRejected(Reason.FORBIDDEN, reason, identity=sender)
        return Admitted(command, sender)

    def _authenticate(self, token: object) -> TokenClaims:
        if not isinstance(token, str) or not token:
            raise CommandRejected(Reason.UNAUTHORIZED, "the command carries no token")
        try:
            return self.tokens.verify_access_token(token)
        except TokenExpiredException as exc:
            raise CommandRejected(Reason.TOKEN_EXPIRED, "the command's token has expired") from exc
        except TokenInvalidException as exc:
            raise CommandRejected(Reason.UNAUTHORIZED, exc.message) from exc


def dated(command: AnyCommand, claims: TokenClaims) -> AnyCommand:
    """Under a bearer token (no `cmd`) a command cannot predate the token vouching for it:
    its end-to-end latency (analytics) starts at the token at the earliest. A bound token
    signs the time itself (a feed's observation, signed later): kept as signed, since it
    orders price updates."""
    if claims.command is None and command.issued_at < claims.issued_at:
        return command.model_copy(update={"issued_at": claims.issued_at})
    return command


def bound_to(claims: TokenClaims, document: dict[str, Any]) -> bool:
    """A service token signs one message (its `cmd` claim: `document_digest`); another
    token may carry one."""
    if claims.command is None:
        return claims.role != "service"
    return claims.command == document_digest(document)


def forbidden(kind: CommandType, username: str, claims: TokenClaims) -> str | None:
    """Why this token may not send this command, or None when it may."""
    if kind in CUSTOMER_COMMANDS:
        if claims.role not in CUSTOMER_ROLES or claims.subject != username:
            return "the token belongs to another user"
        return None
    if claims.role == "admin":
        return None
    if claims.role == "service" and kind in SERVICE_COMMANDS.get(claims.subject, ()):
        return None
    return f"{kind} may not be sent with this token"
