"""From SQS messages to sagas: parse, authenticate, lock the user, run, answer.

One group is one user's messages from one received batch: they run back to back under a
single lock acquisition. A message that cannot succeed is answered with
`command.rejected` and removed; a transient failure hands it back (and, FIFO order being
the point, releases the rest of its group untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass

import structlog

from order_processor.domain.commands import (
    AnyCommand,
    CancelOrder,
    CommandRejected,
    Deposit,
    ExecuteOrder,
    ExpireOrder,
    Identity,
    PlaceOrder,
    ResumeOrder,
    Withdraw,
    peek_identity,
)
from order_processor.domain.events import rejection_event
from order_processor.exceptions import LockAcquisitionException, OrderProcessorError
from order_processor.handlers.admission import Admission, Admitted
from order_processor.messaging.consumer import (
    Ack,
    Message,
    Outcome,
    Release,
    Retry,
    ToDeadLetters,
)
from order_processor.messaging.publisher import EventPublisher
from order_processor.saga.context import SagaContext
from order_processor.saga.funds import apply_funds
from order_processor.saga.orders import (
    cancel_order,
    execute_order,
    expire_order,
    place_order,
    resume_order,
)
from order_processor.security.audit import AuditLogger
from order_processor.store.lock import Lease

log = logging.getLogger(__name__)
AUTH_REASONS = frozenset({"UNAUTHORIZED", "TOKEN_EXPIRED", "FORBIDDEN"})


@dataclass(frozen=True)
class CommandHandler:
    context: SagaContext
    admission: Admission
    audit: AuditLogger
    max_receive_count: int = 5

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
                await self.reject(message, rejection)
                outcomes[message.message_id] = Ack()
        if admitted:
            outcomes |= await self._run_locked(admitted)
        return outcomes

    async def _run_locked(self, admitted: list[tuple[Message, Admitted]]) -> dict[str, Outcome]:
        username = admitted[0][1].command.username
        metrics = self.context.metrics
        metrics.add("groups_waiting_for_lock", 1)
        try:
            lease = await self.context.lock.acquire_waiting(username, self._patience(admitted))
        except LockAcquisitionException:
            # Busy: hand back with a jittered delay so contenders spread out.
            metrics.inc("lock_busy_total")
            for _, entry in admitted:
                metrics.inc("commands_retried_total", type=entry.command.type.value)
            return {m.message_id: Retry(delay=random.randint(1, 5)) for m, _ in admitted}  # noqa: S311
        finally:
            metrics.add("groups_waiting_for_lock", -1)
        keeper = asyncio.create_task(self._keep(lease))
        try:
            return await self._run_in_order(admitted, lease)
        finally:
            keeper.cancel()
            await asyncio.shield(self.context.lock.release(lease))

    def _patience(self, admitted: list[tuple[Message, Admitted]]) -> float:
        """How long to wait for a busy lock: briefly, but on a last delivery as long as a
        lease can last (the holder finishes or its lease expires), rather than send a
        group to the dead letters for being unlucky with the lock."""
        if any(m.receive_count >= self.max_receive_count for m, _ in admitted):
            return self.context.lock.lease_seconds + 1.0
        return 2.0

    async def _run_in_order(
        self, admitted: list[tuple[Message, Admitted]], lease: Lease
    ) -> dict[str, Outcome]:
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
            outcome = await self._execute(message, entry, lease)
            if isinstance(outcome, Retry) and message.receive_count >= self.max_receive_count:
                log.warning("%s goes to the dead letters; its group goes on", message.message_id)
                outcome = ToDeadLetters()
                failed.add(_order_of(entry.command) or message.message_id)
            outcomes[message.message_id] = outcome
            if not isinstance(outcome, Ack | ToDeadLetters):
                outcomes |= {m.message_id: Release() for m, _ in admitted[index + 1 :]}
                break
        return outcomes

    async def _keep(self, lease: Lease) -> None:
        """Renew the lease while the group runs long (a lost lease only means the next
        fenced write fails and the message is handed back)."""
        with contextlib.suppress(OrderProcessorError):
            while True:
                await asyncio.sleep(self.context.lock.lease_seconds / 3)
                lease = await self.context.lock.renew(lease)

    async def _execute(self, message: Message, entry: Admitted, lease: Lease) -> Outcome:
        command = entry.command
        context = {
            "message_id": message.message_id,
            "username": command.username,
            "command": command.type.value,
            "command_id": command.command_id,
        }
        with structlog.contextvars.bound_contextvars(**context):
            outcome = await self._attempt(message, entry, lease)
            log.info("command handled: %s", type(outcome).__name__.lower())
            structlog.contextvars.unbind_contextvars("order_id", "step")
        kind = "processed" if isinstance(outcome, Ack) else "retried"
        self.context.metrics.inc(f"commands_{kind}_total", type=command.type.value)
        return outcome

    async def _attempt(self, message: Message, entry: Admitted, lease: Lease) -> Outcome:
        try:
            await self._dispatch(entry.command, lease)
        except CommandRejected as rejection:
            rejection.identity = rejection.identity or entry.sender
            await self.reject(message, rejection)
        except OrderProcessorError as exc:
            if exc.retryable:
                log.info("retrying %s: %s", message.message_id, exc)
                return Retry()
            # Not a rejection the saga chose: an order may be left mid-way. Keep the
            # message (backoff, then the DLQ) rather than acknowledge unfinished work.
            log.exception("command %s hit %s; it will be retried", message.message_id, exc.code)
            return Retry()
        except Exception:
            # A bug or an unforeseen AWS answer: back off and retry; after
            # maxReceiveCount receives the redrive policy moves it to the DLQ.
            log.exception("command %s failed unexpectedly", message.message_id)
            return Retry()
        return Ack()

    async def _dispatch(self, command: AnyCommand, lease: Lease) -> None:
        if isinstance(command, PlaceOrder):
            await place_order(self.context, lease, command)
        elif isinstance(command, Deposit | Withdraw):
            await apply_funds(self.context, lease, command)
        elif isinstance(command, CancelOrder):
            await cancel_order(self.context, lease, command)
        elif isinstance(command, ExecuteOrder):
            await execute_order(self.context, lease, command)
        elif isinstance(command, ExpireOrder):
            await expire_order(self.context, lease, command)
        elif isinstance(command, ResumeOrder):
            await resume_order(self.context, lease, command)
        else:
            raise CommandRejected(
                "UNSUPPORTED_COMMAND", f"{command.type} goes to the price-updates queue"
            )

    async def reject(self, message: Message, rejection: CommandRejected) -> None:
        self.context.metrics.inc("commands_rejected_total", reason=rejection.reason)
        await reject(message, rejection, self.context.publisher, self.audit)


def _order_of(command: AnyCommand) -> str | None:
    payload = command.payload
    return getattr(payload, "order_id", None)


async def reject(
    message: Message, rejection: CommandRejected, publisher: EventPublisher, audit: AuditLogger
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
    await publisher.publish(event)
