"""From SQS messages to sagas: admit, run, answer.

One group is one user's messages from one received batch: they run back to back, in the
order received (FIFO order is the user's intent: a deposit before the buy that needs it, a
cancel after the order it cancels). Each command is one fenced write or two (see
`saga.engine`), so no lock is held between them and none is left behind by a crash. A
message that cannot succeed is answered with `command.rejected` and removed; a transient
failure hands it back and releases the rest of its group untouched.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import structlog

from order_processor.awserrors import is_transient
from order_processor.domain.commands import AnyCommand, peek_identity
from order_processor.domain.ports import CommandFailures, EventSink, MetricsSink, NoMetrics
from order_processor.domain.steps import Step
from order_processor.exceptions import CommandRejected, OrderProcessorError
from order_processor.handlers.admission import Admission, Admitted
from order_processor.handlers.answers import from_sender, rejection_answer
from order_processor.messaging.consumer import (
    Ack,
    Backoff,
    Message,
    Outcome,
    Release,
    Retry,
    ToDeadLetters,
)
from order_processor.saga.engine import Saga
from order_processor.saga.group import commit_together, decide_together
from order_processor.security.audit import AuditLogger

log = logging.getLogger(__name__)
TRANSIENT_RETRY_SECONDS = 10.0
FIRST_PAUSE_SECONDS = 0.05
MAX_PAUSE_SECONDS = 2.0
# A command handed back after its retries in place: short delays at first (the user's
# whole FIFO group waits behind it), doubling to six minutes as an outage goes on, so that
# the queue's 50-receive backstop outlasts one of three hours (DynamoDB's in us-east-1 on
# 2025-10-20): about 8 receives in the first four minutes, then one every 3-6 minutes.
TRANSIENT_BACKOFF = Backoff(base_seconds=2.0, max_seconds=360)


def is_transient_failure(exc: BaseException) -> bool:
    """What another attempt a moment later may overcome, whichever layer raised it."""
    if isinstance(exc, OrderProcessorError):
        return exc.retryable
    return is_transient(exc)


def attempt_of(message: Message) -> str:
    """One delivery of a message: its id and a digest of this receive's handle."""
    handle = hashlib.sha256(message.receipt_handle.encode()).hexdigest()[:16]
    return f"{message.message_id}:{handle}"


def _code_of(exc: BaseException) -> str:
    return exc.code if isinstance(exc, OrderProcessorError) else type(exc).__name__


@dataclass(frozen=True)
class CommandHandler:
    saga: Saga
    events: EventSink
    admission: Admission
    audit: AuditLogger
    failures: CommandFailures
    max_failures: int = 5
    # The queue's own redrive moves a message after this many receives whatever the
    # cause: the backstop for what never gets answered (a message that kills its worker).
    max_receive_count: int = 50
    transient_seconds: float = TRANSIENT_RETRY_SECONDS
    metrics: MetricsSink = field(default_factory=NoMetrics)
    group_commit: bool = True  # a user's batch decided together, written once

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
        """In order: as many as can be, together (`_together`); a command that cannot be
        (the saga rejects it, or cannot carry it out in memory) alone; then together
        again. A failure hands the rest back untouched (FIFO order), but a command that
        has spent its failure budget goes to the dead letters at once, with the later
        commands about the same order (a cancel must not overtake its order), and the
        user's other commands go on (one by one): held back, they would ride to the DLQ
        too."""
        outcomes: dict[str, Outcome] = {}
        failed: set[str] = set()  # order ids of commands sent to the dead letters
        together = self.group_commit
        index = 0
        while index < len(admitted):
            if together and not failed and len(admitted) - index > 1:
                done = await self._together(admitted[index:])
                together = done is not None
                if done:
                    outcomes |= done
                    index += len(done)
                    if all(isinstance(outcome, Ack) for outcome in done.values()):
                        continue
                    outcomes |= {m.message_id: Release() for m, _ in admitted[index:]}
                    break
            message, entry = admitted[index]
            index += 1
            if _order_of(entry.command) in failed:
                outcomes[message.message_id] = ToDeadLetters()
                continue
            outcome = await self._execute(message, entry)
            if isinstance(outcome, Retry) and message.receive_count >= self.max_receive_count:
                outcome = ToDeadLetters()  # its last delivery: the queue would move it anyway
            if isinstance(outcome, ToDeadLetters):
                log.warning("%s goes to the dead letters; its group goes on", message.message_id)
                failed.add(_order_of(entry.command) or message.message_id)
            outcomes[message.message_id] = outcome
            if not isinstance(outcome, Ack | ToDeadLetters):
                outcomes |= {m.message_id: Release() for m, _ in admitted[index:]}
                break
        return outcomes

    async def _together(
        self, admitted: list[tuple[Message, Admitted]]
    ) -> dict[str, Outcome] | None:
        """The first of a batch of one user's commands, decided in memory from one read
        (`saga.group`), written in one transaction, announced in one publish, and the
        rejection of the one after them if that is what ended the batch: their outcomes
        (none: the first goes alone). None when something failed on the way (a read, the
        write refused because the books changed, its answer lost, the publish): the
        batch is then carried out one by one, each command answered from what is
        stored."""
        if len({entry.command.username for _, entry in admitted}) != 1:
            return None
        try:
            together = await decide_together(self.saga, [entry.command for _, entry in admitted])
            done = admitted[: len(together.answers)]
            if done:
                await commit_together(self.saga, together)
                events = [event for answer in together.answers for event in answer]
                await self._in_place(partial(self.events.publish, events))
        except Exception as exc:
            log.info("%d commands go one by one: %s", len(admitted), exc)
            self.metrics.inc("group_commits_total", outcome="one_by_one")
            return None
        outcomes: dict[str, Outcome] = {message.message_id: Ack() for message, _ in done}
        if done:
            self.saga.faults.after_commit(Step.ANNOUNCED)
            self.metrics.inc("group_commits_total", outcome="committed")
            for (message, entry), last in zip(done, together.last_writes, strict=True):
                self.metrics.inc("commands_processed_total", type=entry.command.type.value)
                order_id, step = last or (None, None)
                with structlog.contextvars.bound_contextvars(
                    **self._context(message, entry),
                    order_id=order_id,
                    step=step,
                    together=len(done),
                ):
                    log.info("command handled: ack")
        if together.rejected is not None:
            message, entry = admitted[len(done)]
            rejection = from_sender(together.rejected, entry.sender)
            outcomes[message.message_id] = await self._answer(message, rejection)
        return outcomes

    async def _execute(self, message: Message, entry: Admitted) -> Outcome:
        command = entry.command
        with structlog.contextvars.bound_contextvars(**self._context(message, entry)):
            outcome = await self._attempt(message, entry)
            log.info("command handled: %s", type(outcome).__name__.lower())
            structlog.contextvars.unbind_contextvars("order_id", "step")
        kind = "processed" if isinstance(outcome, Ack) else "retried"
        self.metrics.inc(f"commands_{kind}_total", type=command.type.value)
        return outcome

    def _context(self, message: Message, entry: Admitted) -> dict[str, str]:
        """What each of a command's log lines says about it."""
        command = entry.command
        return {
            "message_id": message.message_id,
            "username": command.username,
            "command": command.type.value,
            "command_id": command.command_id,
        }

    async def _attempt(self, message: Message, entry: Admitted) -> Outcome:
        """The saga, again and again while AWS is briefly unwell (throttling outliving
        botocore's own attempts, a conflict, a partial publish), for `transient_seconds`
        with a jittered pause, then handed back: transient trouble never spends the
        command's failure budget. Anything else is unforeseen: counted, backed off, and
        once the budget is spent sent to the dead letters."""
        try:
            await self._in_place(lambda: self.saga.handle(entry.command))
        except CommandRejected as rejection:
            return await self._answer(message, from_sender(rejection, entry.sender))
        except Exception as exc:
            if is_transient_failure(exc):
                return self._hand_back(message, exc)
            return await self._failed(message, entry, exc)
        return Ack()

    async def _in_place(self, work: Callable[[], Awaitable[None]]) -> None:
        """`work`, again while it fails transiently, for `transient_seconds` with a
        jittered, doubling pause; what it then still raises is raised."""
        deadline = time.monotonic() + self.transient_seconds
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                await work()
                return
            except Exception as exc:
                if not is_transient_failure(exc) or time.monotonic() + pause > deadline:
                    raise
                self.metrics.inc("commands_transient_retries_total", reason=_code_of(exc))
                await asyncio.sleep(pause * random.uniform(0.5, 1))  # noqa: S311
                pause = min(pause * 2, MAX_PAUSE_SECONDS)

    def _hand_back(self, message: Message, exc: BaseException) -> Outcome:
        """Transient trouble that outlived the retries in place: back on the queue after a
        delay that grows with its receives (TRANSIENT_BACKOFF), never counted."""
        log.info("handing %s back: %s", message.message_id, exc)
        self.metrics.inc("commands_handed_back_total", reason=_code_of(exc))
        return Retry(delay=TRANSIENT_BACKOFF.delay(message.receive_count))

    async def _failed(self, message: Message, entry: Admitted, exc: Exception) -> Outcome:
        """An unforeseen failure (a bug, a permission, a refusal the saga did not choose):
        never acknowledged as done; counted against the command's budget."""
        log.error("command %s failed unexpectedly", message.message_id, exc_info=exc)
        command = entry.command
        try:
            failures = await self.failures.record(
                command.username, command.command_id, attempt_of(message)
            )
        except Exception as count_failed:
            # Not counted, so not held against the command: the backstop still holds.
            log.warning("could not count the failure of %s: %s", message.message_id, count_failed)
            return Retry()
        self.metrics.inc("commands_failed_total", type=command.type.value)
        return ToDeadLetters() if failures >= self.max_failures else Retry()

    async def _answer(self, message: Message, rejection: CommandRejected) -> Outcome:
        """Publish the rejection, then remove the message. If the event cannot go out, only
        this message comes back (a rejected command changed nothing, so the rest of its
        group goes on); its next delivery is rejected again."""
        event = rejection_answer(message, rejection, self.audit)
        try:
            await self._in_place(lambda: self.events.publish([event]))
        except Exception as exc:
            if is_transient_failure(exc):  # SNS throttled past every try in place
                return self._hand_back(message, exc)
            log.exception("could not publish the rejection of %s", message.message_id)
            return Retry()
        self.metrics.inc("commands_rejected_total", reason=rejection.reason)
        return Ack()


def _order_of(command: AnyCommand) -> str | None:
    payload = command.payload
    return getattr(payload, "order_id", None)
