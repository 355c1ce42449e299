"""`GET /v1/stream`: the user's own events as Server-Sent Events.

`id:` is the event's position in the user's stream (the read model's), `event:` its
type, `data:` the event's JSON. Without `Last-Event-ID` a stream starts now (at the
user's tail); with it, after that event: nothing lost, nothing repeated. When the events
after it are no longer kept (or the id is unknown) an `event: gap` comes first: the client
reads its orders and balances again.

ONE dispatcher per process waits on the read model for every open stream (one
`wait_events` call for all users, never a connection per client) and hands each listener
what follows its own position. Open streams are capped per user and per address (429
beyond). While the read model is away a stream says so (`event: unavailable`) and ends;
the client reconnects after `retry:`. A listener too slow to take its events is ended the
same way: it resumes from its last id. Heartbeat comments keep idle connections open."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from order_processor.gateway.auth import Authenticated
from order_processor.gateway.deps import Runtime, runtime_of
from order_processor.gateway.limits import GatewayLimits
from order_processor.gateway.problems import Problem, ProblemType, problem_responses
from order_processor.readmodel.ports import ReadModel, ReadModelUnavailable, StreamedEvent

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["stream"])
Running = Annotated[Runtime, Depends(runtime_of)]
EVENT_STREAM = "text/event-stream"
POSITION = re.compile(r"(\d{1,20})-(\d{1,20})")
MAX_ID_PART = 2**64 - 1  # each part of a stream id
CATCH_UP = 1000  # events read for a resuming client before the dispatcher takes over
QUEUED_FRAMES = 2000  # a listener further behind is ended (it resumes from its last id)
AWAY_PAUSE_SECONDS = 1.0
HEARTBEAT = ": keep-alive\n\n"


def event_frame(streamed: StreamedEvent) -> str:
    event = streamed.event
    return f"id: {streamed.position}\nevent: {event.event_type.value}\ndata: {event.body()}\n\n"


def notice_frame(kind: str, detail: str) -> str:
    return f"event: {kind}\ndata: {json.dumps({'detail': detail})}\n\n"


GAP = notice_frame("gap", "events may have been missed: read your orders and balances again")
AWAY = notice_frame("unavailable", "the event stream is unavailable: reconnect later")


def position_key(position: str) -> tuple[int, int]:
    matched = POSITION.fullmatch(position)
    return (int(matched[1]), int(matched[2])) if matched else (0, 0)


@dataclass(eq=False)
class Listener:
    username: str
    address: str
    position: str = "0-0"
    frames: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUED_FRAMES))
    ended: bool = False  # nothing more is delivered; the dispatcher no longer waits for it

    def deliver(self, events: Iterable[StreamedEvent]) -> None:
        if self.ended:
            return
        mine = [e for e in events if position_key(e.position) > position_key(self.position)]
        for streamed in mine:
            try:
                self.frames.put_nowait(event_frame(streamed))
            except asyncio.QueueFull:
                self.end(AWAY)
                return
            self.position = streamed.position

    def end(self, last: str | None = None) -> None:
        """The stream ends after its queued frames (and `last`)."""
        self.ended = True
        with contextlib.suppress(asyncio.QueueFull):
            if last is not None:
                self.frames.put_nowait(last)
        while True:
            try:
                self.frames.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.frames.get_nowait()  # too slow anyway: drop its oldest frame


@dataclass
class Dispatcher:
    model: ReadModel
    limits: GatewayLimits
    listeners: dict[str, set[Listener]] = field(default_factory=lambda: defaultdict(set))
    open_per_user: Counter[str] = field(default_factory=Counter)
    open_per_address: Counter[str] = field(default_factory=Counter)
    stopped: bool = False
    _task: asyncio.Task[None] | None = None
    _joined: asyncio.Event = field(default_factory=asyncio.Event)

    def reserve(self, username: str, address: str) -> Listener:
        """A place for a stream, or 429 when the user or the address has its fill."""
        if self.stopped:
            raise Problem(ProblemType.UNAVAILABLE, "the gateway is stopping")
        full = (
            self.open_per_user[username] >= self.limits.streams_per_user
            or self.open_per_address[address] >= self.limits.streams_per_address
        )
        if full:
            raise Problem(
                ProblemType.TOO_MANY_REQUESTS,
                "too many open streams: close one first",
                headers={"Retry-After": str(max(1, self.limits.stream_retry_ms // 1000))},
            )
        self.open_per_user[username] += 1
        self.open_per_address[address] += 1
        return Listener(username, address)

    def open_streams(self) -> int:
        return sum(self.open_per_user.values())

    def join(self, listener: Listener) -> None:
        """From its position on, the listener gets its user's events (none once the
        gateway stops, which may have come while the stream was opening: it ends)."""
        if self.stopped:
            listener.end()
            return
        self.listeners[listener.username].add(listener)
        self._joined.set()
        if self._task is None or self._task.done():
            # A context of its own: it serves every stream, not the request that started
            # it (whose request id and user would otherwise name every line it logs).
            self._task = asyncio.create_task(
                self._run(), name="stream-dispatcher", context=contextvars.Context()
            )

    def leave(self, listener: Listener) -> None:
        users = self.listeners.get(listener.username)
        if users is not None:
            users.discard(listener)
            if not users:
                del self.listeners[listener.username]
        for counts, key in (
            (self.open_per_user, listener.username),
            (self.open_per_address, listener.address),
        ):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]

    async def stop(self) -> None:
        """Every stream ends (the gateway is stopping); the dispatcher stops."""
        self.stopped = True
        for users in list(self.listeners.values()):
            for listener in list(users):
                listener.end()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self.stopped:
            if not self.listeners:
                self._joined.clear()
                await self._joined.wait()
                continue
            positions = self._positions()
            try:
                found = await self.model.wait_events(positions, self.limits.stream_wait_seconds)
            except Exception as exc:
                self._away(exc)
                await asyncio.sleep(AWAY_PAUSE_SECONDS)
                continue
            for username, events in found.items():
                for listener in list(self.listeners.get(username, ())):
                    listener.deliver(events)

    def _positions(self) -> dict[str, str]:
        """Each user's earliest position among its live listeners. An ended listener
        (too slow: its client is not reading) is waited for no more: its stale position
        would answer every wait at once with the same events, a spin."""
        positions = {}
        for username, users in list(self.listeners.items()):
            live = [each.position for each in users if not each.ended]
            if live:
                positions[username] = min(live, key=position_key)
        return positions

    def _away(self, exc: Exception) -> None:
        """The model cannot answer: every stream says so and ends (clients reconnect)."""
        if isinstance(exc, ReadModelUnavailable):
            log.warning("the event stream's read model is away: %s", exc)
        else:
            log.error("the stream dispatcher failed", exc_info=exc)
        for users in list(self.listeners.values()):
            for listener in list(users):
                listener.end(AWAY)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The user's events", "content": {EVENT_STREAM: {}}},
        **problem_responses(401, 422, 429, 500, 503),
    },
    summary="The user's order and balance events, as Server-Sent Events",
)
async def stream(
    request: Request,
    user: Authenticated,
    runtime: Running,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
) -> StreamingResponse:
    dispatcher = runtime.dispatcher
    listener = dispatcher.reserve(user.username, str(request.state.network))
    retry = f"retry: {runtime.gateway.limits.stream_retry_ms}\n\n"
    try:
        first = await _catch_up(runtime.gateway.read_model, listener, last_event_id)
    except ReadModelUnavailable:
        dispatcher.leave(listener)
        return _event_stream(_frames([retry, AWAY]))
    except BaseException:
        dispatcher.leave(listener)
        raise
    dispatcher.join(listener)
    heartbeat = runtime.gateway.limits.heartbeat_seconds
    return _event_stream(_follow(dispatcher, listener, [retry, *first], heartbeat))


async def _catch_up(model: ReadModel, listener: Listener, last_event_id: str | None) -> list[str]:
    """The frames a stream starts with; the listener's position after them."""
    if last_event_id is None:
        listener.position = await model.tail(listener.username)
        return []
    given = last_event_id.strip()
    tail = await model.tail(listener.username)
    known = _issued(given, tail)
    read = await model.events_after(listener.username, given if known else "unknown", CATCH_UP)
    frames = [GAP] if read.gap else []
    frames += [event_frame(e) for e in read.events]
    if read.events:
        listener.position = read.events[-1].position
    elif read.gap or not known:
        listener.position = tail
    else:
        listener.position = given
    return frames


def _issued(position: str, tail: str) -> bool:
    """A position the stream may have issued: not past its tail (one beyond it would wait
    for events that never reach it) nor past a stream id's range (Redis refuses it)."""
    if POSITION.fullmatch(position) is None:
        return False
    key = position_key(position)
    return max(key) <= MAX_ID_PART and key <= position_key(tail)


async def _frames(frames: list[str]) -> AsyncIterator[str]:
    for frame in frames:
        yield frame


async def _follow(
    dispatcher: Dispatcher, listener: Listener, first: list[str], heartbeat: float
) -> AsyncIterator[str]:
    try:
        for frame in first:
            yield frame
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    next_frame = await listener.frames.get()
            except TimeoutError:
                yield HEARTBEAT
                continue
            if next_frame is None:
                return
            yield next_frame
    finally:
        dispatcher.leave(listener)


def _event_stream(frames: AsyncIterator[str]) -> StreamingResponse:
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames, media_type=EVENT_STREAM, headers=headers)
