"""The command handler over in-memory ports: what each message of a group is answered with
when the answer itself cannot go out."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from order_processor.domain.events import Event, EventType
from order_processor.domain.ports import LedgerWrite
from order_processor.exceptions import ServiceUnavailableException
from order_processor.handlers.admission import Admission
from order_processor.handlers.commands import CommandHandler
from order_processor.messaging.consumer import Ack, Message, Release, Retry, ToDeadLetters
from order_processor.saga.decision import Limits
from order_processor.saga.engine import Saga
from order_processor.security.audit import AuditLogger
from order_processor.security.tokens import TokenManager
from tests.unit.fakes import MemoryEvents, MemoryFailures, MemoryLedger
from tests.unit.test_saga import USER, world

SECRET = "handler-secret-" + "q" * 32
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOKENS = TokenManager(SECRET, clock=lambda: NOW)


class RejectionsFail(MemoryEvents):
    """The topic refuses `command.rejected` events; every other event goes out."""

    async def publish(self, events: Sequence[Event]) -> None:
        if any(event.event_type == EventType.COMMAND_REJECTED for event in events):
            raise ConnectionError("topic unreachable")
        await super().publish(events)


def deposit(command_id: str, amount: str, *, auth: str | None = None) -> str:
    return json.dumps(
        {
            "schema": "order-processor/command/v1",
            "command_id": command_id,
            "type": "Deposit",
            "username": USER,
            "issued_at": "2026-11-28T11:59:00Z",
            "auth": auth
            if auth is not None
            else TOKENS.create_access_token("treasury", role="admin"),
            "payload": {"amount": amount},
        }
    )


def handler(saga: Saga, events: MemoryEvents) -> CommandHandler:
    return CommandHandler(
        saga=saga,
        events=events,
        admission=Admission(TOKENS, clock=lambda: NOW),
        audit=AuditLogger(io.StringIO()),
        failures=MemoryFailures(),
    )


def message(number: int, body: str) -> Message:
    return Message(f"m-{number}", f"r-{number}", body, receive_count=1)


def rejecting_world(events: MemoryEvents | None = None) -> tuple[CommandHandler, MemoryLedger]:
    """A handler over a user with 100 USD whose rejections go to `events` (by default: a
    sink that cannot publish them)."""
    _, ledger, _ = world(usd="100")
    events = RejectionsFail() if events is None else events
    saga = Saga(
        ledger, events, Limits(Decimal(10000), Decimal(10000), Decimal(5000)), clock=lambda: NOW
    )
    return handler(saga, events), ledger


async def test_a_forged_command_whose_rejection_cannot_be_published_comes_back_alone() -> None:
    commands, ledger = rejecting_world()
    group = [message(1, deposit("c-1", "10", auth="forged")), message(2, deposit("c-2", "25"))]

    outcomes = await commands.handle_group(USER, group)

    assert outcomes == {"m-1": Retry(), "m-2": Ack()}
    assert ledger.available(USER)[0] == Decimal("125.00")


async def test_a_refused_command_whose_rejection_cannot_be_published_keeps_its_place() -> None:
    """The saga's refusals can depend on order (a withdrawal refused before a deposit), so
    the rest of the group waits behind it; what ran before it stays done."""
    commands, ledger = rejecting_world()
    group = [
        message(1, deposit("c-1", "25")),
        message(2, deposit("c-2", "20000")),
        message(3, deposit("c-3", "5")),
    ]

    outcomes = await commands.handle_group(USER, group)

    assert outcomes == {"m-1": Ack(), "m-2": Retry(), "m-3": Release()}
    assert ledger.available(USER)[0] == Decimal("125.00")


# AWS briefly unwell: transient failures never spend a command's failure budget.


class FlakyLedger(MemoryLedger):
    """Its writes raise the given errors, one per write, before it writes for real."""

    def __init__(self, *errors: Exception) -> None:
        super().__init__()
        self.errors = list(errors)

    async def write(self, change: LedgerWrite) -> None:
        if self.errors:
            raise self.errors.pop(0)
        await super().write(change)


def flaky_handler(
    *errors: Exception, transient_seconds: float = 5, max_failures: int = 3
) -> tuple[CommandHandler, FlakyLedger, MemoryFailures]:
    _, seeded, _ = world(usd="100")
    ledger = FlakyLedger(*errors)
    ledger.users, ledger.cash = seeded.users, seeded.cash
    events, failures = MemoryEvents(), MemoryFailures()
    saga = Saga(
        ledger, events, Limits(Decimal(10000), Decimal(10000), Decimal(5000)), clock=lambda: NOW
    )
    commands = CommandHandler(
        saga=saga,
        events=events,
        admission=Admission(TOKENS, clock=lambda: NOW),
        audit=AuditLogger(io.StringIO()),
        failures=failures,
        max_failures=max_failures,
        max_receive_count=50,
        transient_seconds=transient_seconds,
    )
    return commands, ledger, failures


def delivery(receive: int, body: str) -> Message:
    return Message("m-1", f"handle-{receive}", body, receive_count=receive)


THROTTLED = ServiceUnavailableException("DynamoDB is unavailable: ThrottlingException")


async def test_throttling_that_outlived_botocores_attempts_is_retried_in_place() -> None:
    commands, ledger, failures = flaky_handler(THROTTLED, THROTTLED, THROTTLED)

    outcomes = await commands.handle_group(USER, [delivery(1, deposit("c-1", "10"))])

    assert outcomes == {"m-1": Ack()}
    assert ledger.available(USER)[0] == Decimal("110.00")
    assert failures.attempts == {}


async def test_an_outage_hands_the_command_back_soon_and_never_counts_it_as_failed() -> None:
    commands, ledger, failures = flaky_handler(*[THROTTLED] * 50, transient_seconds=0.3)

    soon = await commands.handle_group(USER, [delivery(1, deposit("c-1", "10"))])
    outcomes = await commands.handle_group(USER, [delivery(49, deposit("c-1", "10"))])

    assert isinstance(soon["m-1"], Retry)
    assert 0 <= (soon["m-1"].delay or 0) <= 2  # a blip: back within two seconds
    assert isinstance(outcomes["m-1"], Retry)
    assert 180 <= (outcomes["m-1"].delay or 0) <= 360  # a long outage: spaced out
    assert failures.attempts == {}
    assert ledger.available(USER)[0] == Decimal("100.00")


async def test_the_last_receive_the_queue_allows_sends_it_to_the_dead_letters_itself() -> None:
    commands, _, _ = flaky_handler(*[THROTTLED] * 50, transient_seconds=0)

    outcomes = await commands.handle_group(USER, [delivery(50, deposit("c-1", "10"))])

    assert outcomes == {"m-1": ToDeadLetters()}


async def test_an_unforeseen_failure_spends_the_budget_once_per_delivery() -> None:
    bug = RuntimeError("a bug")
    commands, ledger, failures = flaky_handler(bug, bug, bug, bug)
    body = deposit("c-1", "10")

    first = await commands.handle_group(USER, [delivery(1, body)])
    again = await commands.handle_group(USER, [delivery(1, body)])  # the same delivery
    second = await commands.handle_group(USER, [delivery(2, body)])
    third = await commands.handle_group(USER, [delivery(3, body)])

    assert [first, again, second] == [{"m-1": Retry()}] * 3
    assert third == {"m-1": ToDeadLetters()}
    assert len(failures.attempts[(USER, "c-1")]) == 3
    assert ledger.available(USER)[0] == Decimal("100.00")


class AnswerLostLedger(FlakyLedger):
    """Its first write commits, then its answer is lost (a read timeout after the request
    applied; botocore's own retries spent)."""

    async def write(self, change: LedgerWrite) -> None:
        await super().write(change)
        if self.writes_lost < 1:
            self.writes_lost += 1
            raise ServiceUnavailableException("DynamoDB is unreachable: Read timeout")

    writes_lost = 0


def market_buy(command_id: str, order_id: str) -> str:
    return json.dumps(
        {
            "schema": "order-processor/command/v1",
            "command_id": command_id,
            "type": "PlaceOrder",
            "username": USER,
            "issued_at": "2026-11-28T11:59:00Z",
            "auth": TOKENS.create_access_token(USER),
            "payload": {
                "order_id": order_id,
                "order_type": "MARKET_BUY",
                "asset_id": "BTC",
                "quantity": "0.1",
            },
        }
    )


@pytest.mark.parametrize("kind", ["deposit", "market buy"])
async def test_a_write_whose_answer_was_lost_is_answered_as_applied_once(kind: str) -> None:
    _, seeded, _ = world(usd="100")
    ledger = AnswerLostLedger()
    ledger.users, ledger.cash, ledger.assets = seeded.users, seeded.cash, seeded.assets
    ledger.holdings = seeded.holdings
    events, failures = MemoryEvents(), MemoryFailures()
    limits = Limits(Decimal(10000), Decimal(10000), Decimal(5000))
    commands = CommandHandler(
        saga=Saga(ledger, events, limits, clock=lambda: NOW),
        events=events,
        admission=Admission(TOKENS, clock=lambda: NOW),
        audit=AuditLogger(io.StringIO()),
        failures=failures,
    )

    body = deposit("c-1", "10") if kind == "deposit" else market_buy("c-1", "o-1")

    outcomes = await commands.handle_group(USER, [delivery(1, body)])

    assert outcomes == {"m-1": Ack()}
    assert failures.attempts == {}
    if kind == "deposit":
        assert ledger.available(USER)[0] == Decimal("110.00")  # once
        assert [e.event_type for e in events.published] == [EventType.BALANCE_DEPOSITED]
        return
    assert ledger.available(USER)[0] == Decimal("90.00")  # 0.1 at 100, once
    assert ledger.holding(USER, "BTC")[0] == Decimal("0.1")
    assert events.of("o-1")[-1] == ("order.completed", 3)
    assert len(ledger.writes) == 1
