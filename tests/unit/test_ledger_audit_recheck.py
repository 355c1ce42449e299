"""While workers run (`allow_in_flight`), the auditor reads a user's records before their
orders, so an order committed in between looks unrecorded: a user's mismatch counts only
when a second read of that user finds it again. Without workers, one read says it all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from order_processor.ops.ledger_audit import AuditReport, LedgerAuditor
from order_processor.ops.mismatch import Mismatch


@dataclass(frozen=True)
class ScriptedReads(LedgerAuditor):
    """Each read of a user returns the next scripted mismatches."""

    reads: list[list[Mismatch]] = field(default_factory=list)

    async def _user_mismatches(
        self, username: str, report: AuditReport, allow_in_flight: bool
    ) -> list[Mismatch]:
        report.orders += 1
        return self.reads.pop(0)


def unrecorded(order_id: str) -> Mismatch:
    return Mismatch("order_records", "alice_01", f"{order_id} has no records", (order_id,))


def auditor(*reads: list[Mismatch]) -> ScriptedReads:
    none: Any = None
    return ScriptedReads(client=none, users_table="t", orders=none, reads=list(reads))


async def test_a_mismatch_the_second_read_does_not_find_was_a_race() -> None:
    audit = auditor([unrecorded("o-1"), unrecorded("o-2")], [unrecorded("o-2")])
    report = AuditReport()

    await audit.audit_user("alice_01", report, allow_in_flight=True)

    assert report.mismatches == [unrecorded("o-2")]  # o-1 was committed in between
    assert report.orders == 1  # the second read is not counted again


async def test_without_workers_one_read_counts_and_a_clean_user_is_read_once() -> None:
    audit = auditor([unrecorded("o-1")], [])
    report = AuditReport()

    await audit.audit_user("alice_01", report)

    assert report.mismatches == [unrecorded("o-1")]
    assert audit.reads == [[]]  # not read again
