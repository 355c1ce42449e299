"""AuditLogger: one JSON line per security event, through structlog.

Secrets never reach a line: the same redaction as the worker logs
(`order_processor.security.redaction`) replaces values under sensitive keys and masks
anything that looks like a JWT, a token segment, a bcrypt hash or a bearer credential
wherever it appears (an exception message, a free-text reason).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

import structlog

from order_processor.security.redaction import REDACTED, Redactor, redact_secrets

__all__ = ["REDACTED", "AuditLogger", "redact_secrets"]


class AuditLogger:
    def __init__(self, stream: TextIO | None = None, *, secrets: Sequence[str] = ()) -> None:
        self._log = structlog.wrap_logger(
            structlog.PrintLogger(stream or sys.stdout),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                Redactor(secrets),
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
        ).bind(audit=True)

    def log_login_success(self, username: str, *, source_ip: str | None = None) -> None:
        self._log.info("login_success", username=username, source_ip=source_ip)

    def log_login_failure(
        self, username: str, reason: str, *, source_ip: str | None = None
    ) -> None:
        self._log.warning("login_failure", username=username, reason=reason, source_ip=source_ip)

    def log_password_change(self, username: str) -> None:
        self._log.info("password_change", username=username)

    def log_access_denied(
        self,
        username: str | None,
        action: str,
        reason: str,
        *,
        claimed_username: str | None = None,
    ) -> None:
        """`username` is an authenticated identity (None before authentication);
        `claimed_username`, what an unauthenticated sender claimed to be (sanitised)."""
        self._log.warning(
            "access_denied",
            username=username,
            claimed_username=claimed_username,
            action=action,
            reason=reason,
        )

    def log_token_created(self, username: str, role: str, expires_at: datetime) -> None:
        self._log.info(
            "token_created", username=username, role=role, expires_at=expires_at.isoformat()
        )

    def log_lockout(self, username: str, seconds: float, *, source_ip: str | None = None) -> None:
        """Logins for `username` (or from `source_ip`) refused for `seconds`."""
        self._log.warning(
            "login_lockout", username=username, seconds=round(seconds), source_ip=source_ip
        )
