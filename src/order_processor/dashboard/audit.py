"""The ledger audit, run now and then in the background: it scans every balance and order,
too much for each 2-second refresh, so the page shows the last result and its time."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from order_processor.domain.base import utc_now
from order_processor.ops.ledger_audit import AuditReport

AUDIT_INTERVAL_SECONDS = 30.0


class Auditor(Protocol):
    """`ops.ledger_audit.LedgerAuditor`: reads only."""

    async def run(self, *, allow_in_flight: bool = False) -> AuditReport: ...


@dataclass
class AuditSchedule:
    """Runs the auditor every `interval` seconds; `last()` is what the page shows.

    The dashboard runs while the load does: in-flight orders (PENDING, PROCESSING) are
    allowed, as `audit --allow-in-flight` does (a saga half-way is not a mismatch, and a
    user's mismatch counts when the auditor's second read of that user finds it again)."""

    auditor: Auditor
    interval: float = AUDIT_INTERVAL_SECONDS
    _last: dict[str, Any] | None = None
    _at: datetime | None = None
    _error: str | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run_once(self) -> None:
        try:
            report = await self.auditor.run(allow_in_flight=True)
        except Exception as exc:  # shown on the page; the next run may pass
            self._error = f"{type(exc).__name__}: {exc}"
        else:
            self._last, self._error = report.as_dict(), None
        self._at = utc_now()
        self._done.set()

    async def run_forever(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    async def first_result(self, seconds: float) -> None:
        """Wait (at most `seconds`) until the first audit has finished."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), seconds)

    def last(self) -> dict[str, Any]:
        return {
            "at": None if self._at is None else self._at.isoformat(),
            "allow_in_flight": True,
            "report": self._last,
            "error": self._error,
        }
