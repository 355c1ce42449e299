"""The read model in Redis (`redis.asyncio`), as `ports` describes it: each change one Lua
script (`scripts`), every key with the TTL, every Redis failure `ReadModelUnavailable`.

The client is given (built by `bootstrap.cache`, with socket timeouts, so a Redis that
stops answering fails a call within them instead of hanging it): a single node (`Redis`)
or a cluster (`RedisCluster`, as ElastiCache Serverless requires); `prefix` keeps models
sharing a server apart.

One hash slot: every key is under the hash tag `{prefix}` (`{op:readmodel}:order:<id>`),
so each script's keys and the XREAD over many users' streams are in one slot, as a cluster
requires (else CROSSSLOT), and every script names each key it touches in KEYS. One slot
is one shard: the model's writes are the event rate (one script per event), far below what
one shard serves, and its reads are mostly the gateway's GETs. At a larger scale the tag
would be per user (`{prefix:<user>}`: a user's stream, documents and orders together, an
order read by its owner, whom the token names; the users spread over the shards) and a
wait would XREAD once per slot of the users it follows.

A blocking wait is cut into slices shorter than the socket timeout (`block_seconds`), so it
never trips it.

A Redis that hangs (it neither answers nor refuses) costs a call the client's timeout, the
retry's included: every read would wait it out before going to DynamoDB, and a GET that
makes two calls would outlast a client's patience. So after a call Redis let time out, the
model does not ask it for its `RedisPause` and answers `ReadModelUnavailable` at once; the
first call after the pause asks again. A refused connection fails fast and pauses nothing.
The gateway's shared counters (`gateway.shared`) keep the same pause: one Redis, one verdict.

Gaps: the stream is trimmed exactly (`MAXLEN n`: one entry out per entry in, as cheap as
the approximate trim at these lengths, and the stream keeps what the model promises); the
script notes the newest entry each trim drops (Redis's own `max-deleted-entry-id` counts
XDEL only): a position before it is a gap, one at or after it is not. A stream made anew
(its predecessor expired) remembers its first position (`P:user:<name>:origin`): a
position from before it is a gap; "0-0" (nothing read yet) is not, unless events were
trimmed since. A stream that expired entirely: any position but "0-0" is a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pydantic import ValidationError
from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from order_processor.domain.events import Event, EventType
from order_processor.domain.orders import Order, OrderStatus
from order_processor.readmodel import scripts
from order_processor.readmodel.ports import (
    Document,
    ReadModelUnavailable,
    StreamedEvent,
    StreamRead,
)

log = logging.getLogger(__name__)
START = "0-0"
POSITION = re.compile(r"^(\d+)(?:-(\d+))?$")
WAIT_CHUNK = 500  # streams per XREAD: thousands of users wait in a few calls

RedisClient: TypeAlias = Redis | RedisCluster  # a single node, or a cluster
# Every failure of Redis (refused, reset, timed out, loading, read-only, OOM...), and of a
# cluster (no node reachable, a slot not served while it reshapes).
REDIS_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)
# What a Redis that hangs gives (a socket timeout, redis-py's or asyncio's).
REDIS_TIMEOUTS = (RedisTimeoutError, TimeoutError)


@dataclass
class RedisPause:
    """After a call Redis let time out, Redis is not asked for `seconds` (the callers go
    to their fallback at once); shared by whoever calls the same Redis."""

    seconds: float = 5.0
    until: float = 0.0  # the monotonic clock's

    def active(self) -> bool:
        return time.monotonic() < self.until

    def begin(self) -> None:
        self.until = time.monotonic() + self.seconds


@dataclass(frozen=True)
class Scripts:
    """The scripts registered with the client (EVALSHA, loaded again after a restart)."""

    apply: AsyncScript
    fill_order: AsyncScript
    fill_document: AsyncScript
    read: AsyncScript

    @classmethod
    def of(cls, redis: RedisClient) -> Scripts:
        return cls(
            apply=redis.register_script(scripts.APPLY),
            fill_order=redis.register_script(scripts.FILL_ORDER),
            fill_document=redis.register_script(scripts.FILL_DOCUMENT),
            read=redis.register_script(scripts.READ),
        )


@dataclass(frozen=True)
class RedisReadModel:
    redis: RedisClient
    prefix: str = "op:readmodel"
    ttl_seconds: float = 60.0
    price_ttl_seconds: float = 2.0
    stream_length: int = 1000
    block_seconds: float = 1.0
    pause: RedisPause = field(default_factory=RedisPause, repr=False)
    _scripts: Scripts = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(
                f"a read model's prefix is its hash tag, without braces: {self.prefix}"
            )
        object.__setattr__(self, "_scripts", Scripts.of(self.redis))

    @property
    def namespace(self) -> str:
        """What every key starts with: the prefix as the hash tag (`{op:readmodel}`)."""
        return f"{{{self.prefix}}}"

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_seconds * 1000))

    async def apply(self, event: Event) -> bool:
        username = event.username
        if username is None:
            return False
        kind, sequence, order_body, reason = _order_part(event)
        keys = [
            self._order_key(event.order_id or ""),
            self._user_key(username, "generation"),
            self._stream_key(username),
            self._user_key(username, "origin"),
            self._user_key(username, "seen"),
            *(self._user_key(username, kind_.value) for kind_ in Document),
        ]
        arguments: list[str | int] = [
            event.event_id,
            event.body(),
            kind,
            sequence,
            order_body,
            username,
            reason,
            self._ttl_ms,
            self.stream_length,
            self.stream_length * 2,
        ]
        async with self._answering():
            applied = await self._scripts.apply(keys, arguments)
        return bool(applied)

    async def order(self, order_id: str) -> Order | None:
        async with self._answering():
            kept = await self.redis.hgetall(self._order_key(order_id))
        if not kept:
            return None
        try:
            order = Order.model_validate_json(kept.get(b"body", b""))
        except ValidationError as exc:  # another writer's (a version mid-rollout): unread
            raise ReadModelUnavailable(f"order {order_id}'s entry is unreadable") from exc
        rejected = kept.get(b"rejected")
        if rejected is not None:
            reason = _text(rejected)
            return order.evolve(status=OrderStatus.FAILED, failure_reason=reason)
        return order

    async def fill_order(self, order: Order) -> bool:
        key = self._order_key(order.order_id)
        arguments: list[str | int] = [
            order.sequence,
            order.username,
            order.model_dump_json(),
            self._ttl_ms,
        ]
        async with self._answering():
            return bool(await self._scripts.fill_order([key], arguments))

    async def generation(self, username: str) -> int:
        async with self._answering():
            value = await self.redis.get(self._user_key(username, "generation"))
        return int(value or 0)

    async def document(self, username: str, kind: Document) -> str | None:
        async with self._answering():
            value = await self.redis.get(self._user_key(username, kind.value))
        return None if value is None else _text(value)

    async def fill_document(
        self, username: str, kind: Document, body: str, generation: int
    ) -> bool:
        keys = [self._user_key(username, "generation"), self._user_key(username, kind.value)]
        async with self._answering():
            kept = await self._scripts.fill_document(keys, [generation, body, self._ttl_ms])
        return bool(kept)

    async def prices(self) -> str | None:
        async with self._answering():
            value = await self.redis.get(f"{self.namespace}:prices")
        return None if value is None else _text(value)

    async def fill_prices(self, body: str) -> None:
        ttl = max(1, int(self.price_ttl_seconds * 1000))
        async with self._answering():
            await self.redis.set(f"{self.namespace}:prices", body, px=ttl)

    async def tail(self, username: str) -> str:
        async with self._answering():
            last = await self.redis.xrevrange(self._stream_key(username), count=1)
        return _text(last[0][0]) if last else START

    async def events_after(self, username: str, position: str | None, limit: int) -> StreamRead:
        parsed = None if position is None else _parse(position)
        start = "-" if parsed is None else f"({parsed[0]}-{parsed[1]}"
        async with self._answering():
            keys = [self._stream_key(username), self._user_key(username, "origin")]
            read = await self._scripts.read(keys, [start, max(1, limit)])
        exists, trimmed_at, origin, entries = read
        events = _streamed(entries)[: max(0, limit)]
        if position is None:
            return StreamRead(events)
        if parsed is None:
            return StreamRead(events, gap=True)
        trimmed = parsed < (_parse(_text(trimmed_at)) or (0, 0))
        started = parsed != (0, 0)  # "0-0", "0", "00-0": the start, never a gap
        before = started and (not exists or parsed < (_parse(_text(origin)) or (0, 0)))
        return StreamRead(events, gap=trimmed or before)

    async def wait_events(
        self, positions: Mapping[str, str], wait_seconds: float
    ) -> dict[str, list[StreamedEvent]]:
        streams = {self._stream_key(user): _xread_id(at) for user, at in positions.items()}
        users = {self._stream_key(user): user for user in positions}
        chunks = [
            dict(list(streams.items())[i : i + WAIT_CHUNK])
            for i in range(0, len(streams), WAIT_CHUNK)
        ]
        deadline = time.monotonic() + max(0.0, wait_seconds)
        block = 0.0  # the first read does not wait: events already there are answered at once
        while True:
            found = await self._read_chunks(chunks, block)
            events = {}
            for key, entries in found:
                if readable := _streamed(entries):
                    events[users[_text(key)]] = readable
                for chunk in chunks:  # entries skipped (unreadable) are not read again
                    if _text(key) in chunk:
                        chunk[_text(key)] = _text(entries[-1][0])
            if events:
                return events
            left = deadline - time.monotonic()
            if left <= 0:
                return {}
            block = min(left, self.block_seconds)

    async def _read_chunks(
        self, chunks: Sequence[dict[str, str]], block: float
    ) -> list[tuple[Any, Any]]:
        if not chunks:
            await asyncio.sleep(block)
            return []
        block_ms = None if block <= 0 else max(1, int(block * 1000))
        async with self._answering():
            reads = [asyncio.create_task(self._xread(chunk, block_ms)) for chunk in chunks]
            try:
                await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for read in reads:
                    read.cancel()
                await asyncio.gather(*reads, return_exceptions=True)
            found: list[tuple[Any, Any]] = []
            for read in reads:
                if not read.cancelled():
                    found.extend(read.result())
        return found

    async def _xread(self, chunk: dict[str, str], block_ms: int | None) -> list[Any]:
        streams: dict[Any, Any] = dict(chunk)
        found = await self.redis.xread(streams, block=block_ms)
        return list(found or [])

    async def ping(self) -> None:
        async with self._answering():
            await self.redis.ping()

    @contextlib.asynccontextmanager
    async def _answering(self) -> AsyncIterator[None]:
        """Every failure of Redis or of a cluster (`REDIS_FAILURES`) as
        `ReadModelUnavailable`; after a timeout, none asked during the pause."""
        if self.pause.active():
            raise ReadModelUnavailable("Redis timed out a moment ago: not asked again yet")
        try:
            yield
        except REDIS_TIMEOUTS as exc:
            self.pause.begin()
            raise ReadModelUnavailable(f"Redis did not answer in time: {exc}") from exc
        except REDIS_FAILURES as exc:
            raise ReadModelUnavailable(f"Redis did not answer: {exc}") from exc

    def _order_key(self, order_id: str) -> str:
        return f"{self.namespace}:order:{order_id}"

    def _user_key(self, username: str, part: str) -> str:
        return f"{self.namespace}:user:{username}:{part}"

    def _stream_key(self, username: str) -> str:
        return self._user_key(username, "events")


def _order_part(event: Event) -> tuple[str, int, str, str]:
    """What the event does to its order's entry: (kind, sequence, order JSON, reason)."""
    if event.event_type is EventType.COMMAND_REJECTED:
        if event.order_id is None:
            return "other", 0, "", ""
        return "rejected", 0, "", str(event.data.get("reason", ""))
    if event.order_id is None or event.data.get("order_id") != event.order_id:
        return "other", 0, "", ""
    try:
        order = Order.model_validate(event.data)
    except ValidationError:
        return "other", 0, "", ""
    return "order", order.sequence, order.model_dump_json(), ""


def _parse(position: str) -> tuple[int, int] | None:
    matched = POSITION.match(position)
    if matched is None:
        return None
    return int(matched.group(1)), int(matched.group(2) or 0)


def _xread_id(position: str) -> str:
    parsed = _parse(position)
    return START if parsed is None else f"{parsed[0]}-{parsed[1]}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _streamed(entries: Sequence[Any]) -> list[StreamedEvent]:
    """The entries as events; one that is not an event (another writer's) is skipped
    with a log line: it failed its user's stream, and the dispatcher's every stream."""
    streamed = []
    for position, fields in entries:
        if isinstance(fields, list):  # from a script: a flat [field, value] list
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        try:
            event = Event.model_validate_json(fields.get(b"event", b""))
        except ValidationError:
            log.warning("read model: stream entry %s is not an event, skipped", _text(position))
            continue
        streamed.append(StreamedEvent(_text(position), event))
    return streamed
