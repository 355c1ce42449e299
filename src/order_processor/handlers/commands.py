"""From SQS messages to sagas: admit, run, answer.

One group is one user's messages from one received batch: they run back to back, in the
order received (FIFO order is the user's intent: a deposit before the buy that needs it, a
cancel after the order it cancels). Each command is one fenced write or two (see
`saga.engine`), so no lock is held between them and none is left behind by a crash. A
message that cannot succeed is answered with `command.rejected` and removed; a transient
failure hands it back and releases the rest of its group untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import structlog

from order_processor.domain.commands import AnyCommand, peek_identity
from order_processor.domain.events import rejection_event
from order_processor.domain.ports import EventSink, MetricsSink, NoMetrics
from order_processor.exceptions import CommandRejected, Identity, OrderProcessorError, Reason
from order_processor.handlers.admission import Admission, Admitted
from order_processor.messaging.consumer import (
    Ack,
    Message,
    Outcome,
    Release,
    Retry,
    ToDeadLetters,
)
from order_processor.saga.engine import Saga
from order_processor.security.audit import AuditLogger

log = logging.getLogger(__name__)
AUTH_REASONS = frozenset({Reason.UNAUTHORIZED, Reason.TOKEN_EXPIRED, Reason.FORBIDDEN})


@dataclass(frozen=True)
class CommandHandler:
    saga: Saga
    events: EventSink
    admission: Admission
    audit: AuditLogger
    max_receive_count: int = 5
    metrics: MetricsSink = field(default_factory=NoMetrics)

    def group_of(self, message: Message) -> str:
        username, _ = peek_identity(message.body)
        return username or f"message:{message.message_id}"

    async def handle_group(self, key: str, messages: list[Message]) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        admitted: list[tuple[Message, Admitted]] = []
        for message in messages:
            try:
                admitted.append((message, self.admission.admit(message.body)))
            except CommandRejected as rejection:
                outcomes[message.message_id] = await self._answer(message, rejection)
        return outcomes | await self._run_in_order(admitted)

    async def _run_in_order(self, admitted: list[tuple[Message, Admitted]]) -> dict[str, Outcome]:
        """One after the other. A failure hands the rest back untouched (FIFO order), but
        on its last delivery the failing command goes to the dead letters at once, with
        the later commands about the same order (a cancel must not overtake its order),
        and the user's other commands go on: held back, they would ride to the DLQ too."""
        outcomes: dict[str, Outcome] = {}
        failed: set[str] = set()  # order ids of commands sent to the dead letters
        for index, (message, entry) in enumerate(admitted):
            if _order_of(entry.command) in failed:
                outcomes[message.message_id] = ToDeadLetters()
                continue
            outcome = await self._execute(message, entry)
            if isinstance(outcome, Retry) and message.receive_count >= self.max_receive_count:
                log.warning("%s goes to the dead letters; its group goes on", message.message_id)
                outcome = ToDeadLetters()
                failed.add(_order_of(entry.command) or message.message_id)
            outcomes[message.message_id] = outcome
            if not isinstance(outcome, Ack | ToDeadLetters):
                outcomes |= {m.message_id: Release() for m, _ in admitted[index + 1 :]}
                break
        return outcomes

    async def _execute(self, message: Message, entry: Admitted) -> Outcome:
        command = entry.command
        context = {
            "message_id": message.message_id,
            "username": command.username,
            "command": command.type.value,
            "command_id": command.command_id,
        }
        with structlog.contextvars.bound_contextvars(**context):
            outcome = await self._attempt(message, entry)
            log.info("command handled: %s", type(outcome).__name__.lower())
            structlog.contextvars.unbind_contextvars("order_id", "step")
        kind = "processed" if isinstance(outcome, Ack) else "retried"
        self.metrics.inc(f"commands_{kind}_total", type=command.type.value)
        return outcome

    async def _attempt(self, message: Message, entry: Admitted) -> Outcome:
        try:
            await self.saga.handle(entry.command)
        except CommandRejected as rejection:
            rejection.identity = rejection.identity or entry.sender
            return await self._answer(message, rejection)
        except OrderProcessorError as exc:
            if exc.retryable:
                log.info("retrying %s: %s", message.message_id, exc)
                return Retry()
            # Not a rejection the saga chose: keep the message (backoff, then the DLQ)
            # rather than acknowledge work that was not done.
            log.exception("command %s hit %s; it will be retried", message.message_id, exc.code)
            return Retry()
        except Exception:
            # A bug or an unforeseen AWS answer: back off and retry; on its last delivery
            # it goes to the dead letters.
            log.exception("command %s failed unexpectedly", message.message_id)
            return Retry()
        return Ack()

    async def _answer(self, message: Message, rejection: CommandRejected) -> Outcome:
        """Publish the rejection, then remove the message. If the event cannot go out, only
        this message comes back (a rejected command changed nothing, so the rest of its
        group goes on); its next delivery is rejected again."""
        try:
            await self.reject(message, rejection)
        except Exception:
            log.exception("could not publish the rejection of %s", message.message_id)
            return Retry()
        return Ack()

    async def reject(self, message: Message, rejection: CommandRejected) -> None:
        self.metrics.inc("commands_rejected_total", reason=rejection.reason)
        await reject(message, rejection, self.events, self.audit)


def _order_of(command: AnyCommand) -> str | None:
    payload = command.payload
    return getattr(payload, "order_id", None)


async def reject(
    message: Message, rejection: CommandRejected, events: EventSink, audit: AuditLogger
) -> None:
    """Answer with `command.rejected` (and audit a denial); the caller deletes the message.
    The event names only an authenticated identity (see `rejection_event`)."""
    identity = rejection.identity or Identity()
    claimed_username, claimed_command_id = peek_identity(message.body)
    if rejection.reason in AUTH_REASONS:
        audit.log_access_denied(
            identity.username,
            action="command",
            reason=rejection.message,
            claimed_username=None if identity.username else claimed_username,
        )
    event = rejection_event(
        reason=rejection.reason,
        message=rejection.message,
        message_id=message.message_id,
        username=identity.username,
        command_id=identity.command_id,
        order_id=rejection.details.get("order_id") if identity.username else None,
        claimed_username=claimed_username,
        claimed_command_id=claimed_command_id,
        occurred_at=identity.issued_at or message.sent_at,
    )
    await events.publish([event])
