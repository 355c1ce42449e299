"""Found by the issue-21 attacker; each test failed first.

A refusal whose `command.rejected` event meets SNS throttling is
handed back with the backoff of a bug (2 s doubling to 5 minutes), not retried in place,
and the user's whole FIFO group waits behind it.

README: "transient (throttling ..., a partial publish) → tried again in place for up to
10 s with a jittered pause, then handed back with a short delay (at most 20 s: the user's
FIFO group waits behind it)". `CommandHandler._answer` catches every failure to publish
and answers `Retry()` (no delay: the consumer's exponential Backoff(2 s, 300 s)), with no
in-place retry; for a refusal of the saga the rest of the group is released behind it.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from order_processor.domain.events import Event, EventType
from order_processor.exceptions import ServiceUnavailableException
from order_processor.messaging.consumer import Ack, Message
from order_processor.security.audit import AuditLogger
from tests.unit.fakes import MemoryEvents
from tests.unit.test_command_handler import deposit, rejecting_world
from tests.unit.test_saga import USER


class ThrottledOnce(MemoryEvents):
    """SNS throttles the first `command.rejected` (the publisher's own five attempts
    spent), then takes everything."""

    def __init__(self) -> None:
        super().__init__()
        self.throttled = False

    async def publish(self, events: Sequence[Event]) -> None:
        rejection = any(e.event_type == EventType.COMMAND_REJECTED for e in events)
        if rejection and not self.throttled:
            self.throttled = True
            raise ServiceUnavailableException("SNS is unavailable: Throttled")
        await super().publish(events)


async def test_a_rejection_that_met_throttling_is_retried_in_place_as_transient() -> None:
    random.seed(21)
    events = ThrottledOnce()
    commands, ledger = rejecting_world(events)
    # The first deposit is over the daily limit: refused by the saga, answered with
    # command.rejected. Its 9th delivery (AWS had a bad day).
    group = [
        Message("m-1", "h-1", deposit("c-1", "20000"), receive_count=9),
        Message("m-2", "h-2", deposit("c-2", "5"), receive_count=9),
    ]

    outcomes = await commands.handle_group(USER, group)

    assert outcomes == {"m-1": Ack(), "m-2": Ack()}  # answered in place, the next one ran
    rejections = [e for e in events.published if e.event_type is EventType.COMMAND_REJECTED]
    assert [e.data["command_id"] for e in rejections] == ["c-1"]
    assert ledger.cash[USER, "USD"] == (Decimal("105.00"), Decimal("0.00"))


async def test_a_forged_command_whose_rejection_met_throttling_is_audited_once() -> None:
    """The publish is tried again in place; the denial it answers was decided once."""
    events = ThrottledOnce()
    trail = io.StringIO()
    commands = replace(rejecting_world(events)[0], audit=AuditLogger(trail))
    forged = Message("m-1", "h-1", deposit("c-1", "5", auth="forged"), receive_count=1)

    outcomes = await commands.handle_group(USER, [forged])

    assert outcomes == {"m-1": Ack()}
    assert events.throttled
    denials = [json.loads(line) for line in trail.getvalue().splitlines()]
    assert [d["event"] for d in denials] == ["access_denied"]
