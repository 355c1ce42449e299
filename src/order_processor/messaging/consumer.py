"""The SQS consumer runtime.

Long polling in batches of up to 10, at most `concurrency` messages in flight, messages
grouped by a key (the user) so one group runs back to back in one task, visibility
heartbeats while a group runs, batched deletes only after the handler is done (its effects
committed and its events published), backoff with jitter through ChangeMessageVisibility,
the DLQ through the queue's redrive policy. `stop()` (SIGTERM, SIGINT) stops receiving,
lets in-flight work finish within the grace period, then cancels the rest and hands their
messages back with visibility 0. `burst=True` drains the queue and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from order_processor.awserrors import is_transient

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.literals import QueueAttributeNameType
    from types_aiobotocore_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

log = logging.getLogger(__name__)
HAND_BACK_SECONDS = 5.0
BATCH_ATTEMPTS = 4


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_at: datetime | None = None  # when SQS accepted it (SentTimestamp)
    group_id: str | None = None  # FIFO: the MessageGroupId it was sent with


@dataclass(frozen=True)
class Ack:
    """Done: delete the message."""


@dataclass(frozen=True)
class Retry:
    """Try again later: visible again after `delay` seconds (None: exponential backoff)."""

    delay: int | None = None


@dataclass(frozen=True)
class Release:
    """Not attempted: visible again at once (the rest of a group after a retry)."""


@dataclass(frozen=True)
class ToDeadLetters:
    """Moved to the dead-letter queue now, in the order given (the worker's own redrive, so
    that the commands that depend on a failing one follow it there rather than overtake
    it). Without a dead-letter queue: a Retry."""


Outcome = Ack | Retry | Release | ToDeadLetters
GroupHandler = Callable[[str, list[Message]], Awaitable[dict[str, Outcome]]]


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 2.0
    max_seconds: int = 300

    def delay(self, receive_count: int) -> int:
        """Exponential in the number of receives, with full jitter in its upper half."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(receive_count - 1, 0))
        return int(ceiling / 2 + random.random() * ceiling / 2)  # noqa: S311


@dataclass
class Consumer:
    sqs: SQSClient
    queue_url: str
    handle_group: GroupHandler
    group_of: Callable[[Message], str]
    concurrency: int = 32
    visibility_timeout: int = 60
    wait_seconds: int = 20
    burst: bool = False
    grace_seconds: float = 20.0
    backoff: Backoff = field(default_factory=Backoff)
    dead_letter_url: str | None = None
    delete_linger: float = 0.005  # let deletes of groups finishing together share a batch
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _deletes: list[tuple[Message, asyncio.Future[None]]] = field(default_factory=list, init=False)
    _flusher: asyncio.Task[None] | None = field(default=None, init=False)
    _sending: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _tasks: dict[asyncio.Task[None], list[Message]] = field(default_factory=dict, init=False)
    _stop_by: float | None = field(default=None, init=False)

    def stop(self) -> None:
        """Stop receiving; what is in hand gets `grace_seconds` from now, all told."""
        if self._stop_by is None:
            self._stop_by = time.monotonic() + self.grace_seconds
        self._stopping.set()

    def _grace_left(self) -> float:
        return (
            self.grace_seconds
            if self._stop_by is None
            else max(0.0, self._stop_by - time.monotonic())
        )

    @property
    def in_flight(self) -> int:
        return sum(len(messages) for messages in self._tasks.values())

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self.in_flight >= self.concurrency:
                    # Every slot busy: wait for one to free up, or for the stop.
                    stopping = asyncio.ensure_future(self._stopping.wait())
                    await asyncio.wait(
                        [*self._tasks, stopping], return_when=asyncio.FIRST_COMPLETED
                    )
                    stopping.cancel()
                    continue
                messages = await self._receive(min(10, self.concurrency - self.in_flight))
                if messages:
                    self._dispatch(messages)
                elif self.burst and not self._tasks and await self._queue_is_empty():
                    return
        finally:
            await self._drain()

    async def _receive(self, count: int) -> list[Message]:
        # A long poll never outlasts the grace period (at least 1 s), so that a poll in
        # progress at a stop can be let to answer.
        wait = 1 if self.burst else max(1, min(self.wait_seconds, int(self.grace_seconds)))
        started = time.monotonic()
        receive = asyncio.ensure_future(
            self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.visibility_timeout,
                MessageSystemAttributeNames=[
                    "ApproximateReceiveCount",
                    "SentTimestamp",
                    "MessageGroupId",
                ],
            )
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not receive.done():
            # Stopping mid-poll. A poll cut off on our side goes on at the server: it may
            # take messages (even those handed back at this stop) that would then stay
            # invisible for a whole visibility timeout. So the poll answers first (it
            # ends within its wait), and what it brings is handed back at once; only a
            # poll the endpoint does not answer at all is cut off.
            answer_by = max(self._grace_left(), wait + 2 - (time.monotonic() - started))
            await asyncio.wait({receive}, timeout=answer_by)
            if not receive.done():
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receive
                return []
            if receive.exception() is None:
                brought = [_message(raw) for raw in receive.result().get("Messages", [])]
                await self._change_visibility([(m, 0) for m in brought])
            return []
        if receive.exception() is not None:
            # Throttling, 5xx, a reset connection: the queue is still there; back off.
            log.warning("receive failed, backing off: %s", receive.exception())
            await asyncio.sleep(1 + random.random() * 4)  # noqa: S311
            return []
        response = receive.result()
        return [_message(raw) for raw in response.get("Messages", [])]

    def _dispatch(self, messages: list[Message]) -> None:
        groups: dict[str, list[Message]] = {}
        for message in messages:  # received order is kept within a group (FIFO order)
            try:
                key = self.group_of(message)
            except Exception:  # a body nobody can read still gets answered, alone
                key = f"message:{message.message_id}"
            groups.setdefault(key, []).append(message)
        for key, group in groups.items():
            task = asyncio.create_task(self._run_group(key, group))
            self._tasks[task] = group
            task.add_done_callback(self._tasks.pop)

    async def _run_group(self, key: str, messages: list[Message]) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(messages))
        try:
            outcomes = await self.handle_group(key, messages)
        except asyncio.CancelledError:
            await self._settle(messages, {})
            raise
        except Exception:
            log.exception("handler failed for group %s; its messages will be retried", key)
            outcomes = {m.message_id: Retry() for m in messages}
        finally:
            heartbeat.cancel()
        await self._settle(messages, outcomes)

    async def _heartbeat(self, messages: list[Message]) -> None:
        """Keep long work invisible to other consumers: extend every half timeout."""
        while True:
            await asyncio.sleep(self.visibility_timeout / 2)
            await self._change_visibility([(m, self.visibility_timeout) for m in messages])

    async def _settle(self, messages: list[Message], outcomes: dict[str, Outcome]) -> None:
        buried = [m for m in messages if isinstance(outcomes.get(m.message_id), ToDeadLetters)]
        if buried:
            outcomes = {**outcomes, **await self._to_dead_letters(buried)}
        done = [m for m in messages if isinstance(outcomes.get(m.message_id), Ack)]
        # Done messages stay invisible until their delete lands (a slow answer must not
        # let them run a second time); the others are handed back as they say.
        keeping = asyncio.create_task(self._heartbeat(done)) if done else None
        later = []
        for message in messages:
            outcome = outcomes.get(message.message_id, Release())
            if isinstance(outcome, Retry):
                delay = outcome.delay
                later.append(
                    (message, self.backoff.delay(message.receive_count) if delay is None else delay)
                )
            elif isinstance(outcome, Release):
                later.append((message, 0))
        try:
            if later:
                await asyncio.gather(self._delete(done), self._change_visibility(later))
            else:  # the usual case: deletes only, awaited in place (no task for each part)
                await self._delete(done)
        finally:
            if keeping is not None:
                keeping.cancel()

    async def _delete(self, messages: list[Message]) -> None:
        """Batched across groups: a delete waits a few milliseconds for others (up to 10
        per DeleteMessageBatch), and returns once its batch is sent."""
        if not messages:
            return
        loop = asyncio.get_running_loop()
        waiting = [loop.create_future() for _ in messages]
        self._deletes += list(zip(messages, waiting, strict=True))
        if len(self._deletes) >= 10:
            self._send_deletes()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._send_deletes_after(self.delete_linger))
        await asyncio.gather(*waiting)

    async def _send_deletes_after(self, linger: float) -> None:
        await asyncio.sleep(linger)
        self._send_deletes()

    def _send_deletes(self) -> None:
        """Every waiting delete goes out now, ten to a batch, each batch on its own: one
        whose answer is slow holds up neither the others nor the deletes that follow."""
        while self._deletes:
            chunk, self._deletes = self._deletes[:10], self._deletes[10:]
            sending = asyncio.create_task(self._delete_chunk(chunk))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    async def _delete_chunk(self, chunk: list[tuple[Message, asyncio.Future[None]]]) -> None:
        try:
            await self._delete_batch([m for m, _ in chunk])
        finally:
            for _, done in chunk:
                if not done.done():
                    done.set_result(None)

    async def _delete_batch(self, messages: list[Message]) -> None:
        """A message left undeleted comes back after its visibility timeout and, on FIFO,
        holds its user's group until then: what SQS failed is deleted again (a stale
        receipt handle cannot be helped: its redelivery is answered from the stored
        state, as is every other)."""
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(messages)
        ]
        left = await self._batch_again("delete_message_batch", entries)
        if left:
            log.warning("%d delete(s) failed; those messages will be redelivered", left)

    async def _batch_again(
        self, operation: str, entries: Sequence[Any], queue_url: str | None = None
    ) -> int:
        """One batch call (deletes, visibility changes, sends to the DLQ) on this queue or
        `queue_url`; the entries SQS failed through no fault of ours are sent again, those
        alone, a few times. How many were left undone: those still failing, and those SQS
        refused as the sender's fault (never tried again, never counted as done)."""
        pending, refused = list(entries), 0
        for attempt in range(BATCH_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.05 * 2**attempt * random.uniform(0.5, 1))  # noqa: S311
            try:
                call = getattr(self.sqs, operation)
                response = await call(QueueUrl=queue_url or self.queue_url, Entries=pending)
            except Exception as exc:
                log.warning("%s failed: %s", operation, exc)
                if not is_transient(exc):
                    break  # botocore has tried it already; another call would fail alike
                continue
            failures = response.get("Failed", [])
            for failure in failures:
                if failure.get("SenderFault"):
                    log.warning("%s: %s", operation, failure)
                    refused += 1
            again = {str(f["Id"]) for f in failures if not f.get("SenderFault")}
            pending = [entry for entry in pending if entry["Id"] in again]
            if not pending:
                break
        return len(pending) + refused

    async def _to_dead_letters(self, messages: list[Message]) -> dict[str, Outcome]:
        """Send to the DLQ one after the other, in order (same group), each tried again
        where SQS failed it, then count as done (deleted). One that still could not be
        sent comes back, with every one after it: a cancel never lands in the DLQ, nor
        runs, ahead of the order it cancels. Rare, so one call a message is no cost."""
        if self.dead_letter_url is None:
            return {m.message_id: Retry() for m in messages}
        outcomes: dict[str, Outcome] = {}
        for index, message in enumerate(messages):
            entry = _dead_letter_entry(0, message)
            if await self._batch_again("send_message_batch", [entry], self.dead_letter_url):
                log.warning("could not move %s to the dead letters", message.message_id)
                return outcomes | {m.message_id: Retry() for m in messages[index:]}
            outcomes[message.message_id] = Ack()
        return outcomes

    async def _change_visibility(self, changes: list[tuple[Message, int]]) -> None:
        for start in range(0, len(changes), 10):
            chunk = changes[start : start + 10]
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
                for i, (m, seconds) in enumerate(chunk)
            ]
            # Best effort: what stays undone, its visibility timeout undoes anyway.
            await self._batch_again("change_message_visibility_batch", entries)

    async def _queue_is_empty(self) -> bool:
        names: list[QueueAttributeNameType] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        try:
            response = await self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=names
            )
        except Exception:
            return False
        return all(int(response["Attributes"].get(name, 0)) == 0 for name in names)

    async def _drain(self) -> None:
        """Finish in-flight groups within the grace period; cancel (and hand back) the rest.
        Deletes still on their way get a moment more; one left undone only means its
        message comes back after its visibility timeout, to be answered as applied."""
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=self._grace_left())
            for task in pending:
                task.cancel()
            if pending:
                # Each cancelled group hands its messages back; bounded, since a hand-back
                # that fails only means the visibility timeout brings them back instead.
                await asyncio.wait(pending, timeout=HAND_BACK_SECONDS)
        if self._sending:
            _, unsent = await asyncio.wait(list(self._sending), timeout=HAND_BACK_SECONDS)
            for task in unsent:
                task.cancel()


def _message(raw: MessageTypeDef) -> Message:
    attributes = raw.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    return Message(
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=raw["Body"],
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
        sent_at=datetime.fromtimestamp(int(str(sent)) / 1000, UTC) if str(sent).isdigit() else None,
        group_id=attributes.get("MessageGroupId"),
    )


def _dead_letter_entry(index: int, message: Message) -> SendMessageBatchRequestEntryTypeDef:
    entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(index), "MessageBody": message.body}
    if message.group_id is not None:  # FIFO: keep the group; a dedup id of its own
        entry["MessageGroupId"] = message.group_id
        entry["MessageDeduplicationId"] = f"dead-{message.message_id}"
    return entry
