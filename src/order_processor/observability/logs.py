"""JSON logs: every log line, the standard library's included, one JSON object carrying
the context bound with structlog's contextvars (message_id, username, command, order_id,
step)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TextIO

import structlog


def configure_json_logs(
    level: int = logging.INFO, *, secrets: Sequence[str] = (), stream: TextIO | None = None
) -> None:
    """One JSON object per line on `stream` (standard error by default), for the worker
    programs only (never at import time): structlog's contextvars and a stdlib record's
    `extra` fields are merged into every record, and one redaction step (after the
    traceback is rendered, before the JSON) removes tokens, passwords and secrets whatever
    key or shape they come in, plus the literal `secrets` given (the JWT secret); see
    `order_processor.security.redaction`. Idempotent: the root logger's handlers are
    replaced, never added to, so a second call leaves one handler."""
    from order_processor.security.redaction import RedactingStreamHandler, Redactor

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            Redactor(secrets),
            structlog.processors.JSONRenderer(),
        ],
    )
    # The handler's error report never echoes a record's message or %-arguments.
    handler = RedactingStreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "aiobotocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
