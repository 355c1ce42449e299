"""AuditLogger: one JSON line per security event, through structlog.

Secrets never reach a line: values under sensitive keys are replaced, and anything that
looks like a JWT or a bcrypt hash is masked wherever it appears (an exception message, a
free-text reason).
"""

from __future__ import annotations

import re
import sys
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"
SENSITIVE_SUFFIXES = ("password", "password_hash", "token", "secret", "authorization", "auth")
SECRET_PATTERNS = (
    re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),  # JWT
    re.compile(r"\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}"),  # bcrypt hash
)


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = _redact(key, value)
    return event


def _redact(key: str, value: Any) -> Any:
    if key.lower().endswith(SENSITIVE_SUFFIXES):
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact("", v) for v in value]
    if isinstance(value, str):
        for pattern in SECRET_PATTERNS:
            value = pattern.sub(REDACTED, value)
    return value


class AuditLogger:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._log = structlog.wrap_logger(
            structlog.PrintLogger(stream or sys.stdout),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                redact_secrets,
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

    def log_access_denied(self, username: str | None, action: str, reason: str) -> None:
        self._log.warning("access_denied", username=username, action=action, reason=reason)

    def log_token_created(self, username: str, role: str, expires_at: datetime) -> None:
        self._log.info(
            "token_created", username=username, role=role, expires_at=expires_at.isoformat()
        )
