"""The demo's customers on the gateway: one user in four logs in with their password,
places every order of theirs over HTTP (`POST /v1/orders`, the command id as the
`Idempotency-Key`; the gateway mints the order id) and listens to `GET /v1/stream`, which
must bring the final event of every one of those orders. A stream that ends (the gateway
or Redis away a moment) is opened again with `Last-Event-ID`, so that nothing is lost.

Only their orders go through the gateway: their deposits, withdrawals, conversions and
cancels still go to the queue directly, under the same FIFO group (the username), after
the order they follow was accepted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from order_processor.demo.tally import TERMINAL, percentile
from order_processor.domain.commands import PlaceOrder
from order_processor.domain.events import EventType
from order_processor.domain.users import UserCreate
from order_processor.exceptions import EntityAlreadyExistsException
from order_processor.security.passwords import PasswordManager
from order_processor.store.users import UserDAO

PASSWORD = "Demo-trader-1!"  # noqa: S105 - every demo user's; the users are the demo's own
EVERY_NTH_USER = 4
ATTEMPTS = 3  # a 429, a 503 or a lost connection: tried again, the same Idempotency-Key
KEEP_ALIVE_SECONDS = 3.0
FINAL = {kind.value for kind in TERMINAL} | {EventType.COMMAND_REJECTED.value}


class GatewayRefused(RuntimeError):
    """The gateway refused an order the demo built as valid."""


def trading_over_http(usernames: Sequence[str]) -> list[str]:
    return list(usernames[::EVERY_NTH_USER])


async def create_users(users: UserDAO, usernames: Sequence[str]) -> None:
    """Each with its balance and the demo's one password, hashed once (bcrypt at its cost,
    ~0.25 s a hash: one for each of 20 users would lengthen the demo's start by seconds)."""
    password_hash = await PasswordManager().hash_password(PASSWORD)
    for username in usernames:
        request = UserCreate(
            username=username,
            email=f"{username}@demo.example",
            first_name="Demo",
            last_name="User",
        )
        with contextlib.suppress(EntityAlreadyExistsException):
            await users.create_user(request, password_hash=password_hash)


@dataclass
class StreamListener:
    """One user's `GET /v1/stream`: the order ids whose final event (or rejection) came."""

    username: str
    heard: set[str] = field(default_factory=set)
    last_id: str | None = None
    reconnects: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(
        self, http: aiohttp.ClientSession, url: str, auth: str, stopping: asyncio.Event
    ) -> None:
        while not stopping.is_set():
            headers = {"Authorization": auth}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{url}/v1/stream", headers=headers) as answer:
                    if answer.status == 200:
                        self.opened.set()
                        await self._read(answer)
            if stopping.is_set():
                return
            self.reconnects += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 1.0)

    async def _read(self, answer: aiohttp.ClientResponse) -> None:
        """Frames of `id:`, `event:` and `data:` lines, each ended by a blank line."""
        frame: dict[str, str] = {}
        async for raw in answer.content:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line:
                name, _, value = line.partition(": ")
                frame[name] = value
                continue
            if frame.get("event") in FINAL:
                order_id = json.loads(frame["data"]).get("order_id")
                if order_id:
                    self.heard.add(order_id)
            if "id" in frame:
                self.last_id = frame["id"]
            frame = {}


@dataclass
class GatewayTraders:
    """The users who trade over HTTP: their sessions, their orders and their streams."""

    url: str
    usernames: list[str]
    placed: dict[str, list[str]] = field(default_factory=dict)  # user -> order ids
    post_ms: list[float] = field(default_factory=list)
    listeners: dict[str, StreamListener] = field(default_factory=dict)
    _auth: dict[str, str] = field(default_factory=dict)
    _http: aiohttp.ClientSession | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def trades(self, username: str) -> bool:
        return username in self._auth

    async def open(self, seconds: float = 30) -> None:
        """Log each user in, open their stream and wait until every stream answered."""
        # An idle connection is dropped before the gateway's keep-alive (5 s) ends it: an
        # order sent on a connection the server is closing meets a disconnect.
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEP_ALIVE_SECONDS),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        for username in self.usernames:
            body = {"username": username, "password": PASSWORD}
            async with self._http.post(f"{self.url}/v1/sessions", json=body) as answer:
                if answer.status != 200:
                    raise GatewayRefused(f"login of {username}: {answer.status}")
                self._auth[username] = f"Bearer {(await answer.json())['access_token']}"
            self.placed[username] = []
            listener = self.listeners[username] = StreamListener(username)
            self._tasks.append(
                asyncio.create_task(
                    listener.listen(self._http, self.url, self._auth[username], self._stopping)
                )
            )
        opening = [listener.opened.wait() for listener in self.listeners.values()]
        await asyncio.wait_for(asyncio.gather(*opening), seconds)

    async def place(self, command: PlaceOrder) -> PlaceOrder:
        """The order over HTTP; the command as the gateway sent it (its order id)."""
        assert self._http is not None, "open() first"
        body = command.payload.model_dump(mode="json", exclude_none=True, exclude={"order_id"})
        headers = {"Authorization": self._auth[command.username]}
        headers["Idempotency-Key"] = command.command_id
        began = time.monotonic()
        for attempt in range(1, ATTEMPTS + 1):
            answer = await self._post_order(body, headers, last=attempt == ATTEMPTS)
            if isinstance(answer, str):
                order_id = answer
                break
            await asyncio.sleep(answer)
        self.post_ms.append((time.monotonic() - began) * 1000)
        self.placed[command.username].append(order_id)
        payload = command.payload.model_copy(update={"order_id": order_id})
        return command.model_copy(update={"payload": payload})

    async def _post_order(
        self, body: dict[str, object], headers: dict[str, str], *, last: bool
    ) -> str | float:
        """The order id, or the seconds to wait before the same request again (a 429, a
        503, a connection lost: the same Idempotency-Key answers the same)."""
        assert self._http is not None
        try:
            async with self._http.post(f"{self.url}/v1/orders", json=body, headers=headers) as r:
                if r.status == 202:
                    order_id: str = (await r.json())["order_id"]
                    return order_id
                if r.status not in {429, 503} or last:
                    raise GatewayRefused(f"POST /v1/orders: {r.status} {await r.text()}")
                return float(r.headers.get("Retry-After", "1"))
        except aiohttp.ClientConnectionError:
            if last:
                raise
            return 0.2

    def missed(self, rejected: set[str]) -> dict[str, int]:
        """Per listener, the final events it has not heard (of its orders not rejected)."""
        return {
            user: len(set(self.placed[user]) - rejected - listener.heard)
            for user, listener in self.listeners.items()
        }

    async def wait_heard(self, rejected: set[str], seconds: float = 20) -> bool:
        """Until every listener heard every final event of its user's orders."""
        deadline = time.monotonic() + seconds
        while True:
            heard = not any(self.missed(rejected).values())
            if heard or time.monotonic() > deadline:
                return heard
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def summary(self, orders: int, rejected: set[str]) -> list[str]:
        """The summary's lines: the orders sent over HTTP, each listener's final events."""
        sent = sorted(self.post_ms)
        lines = [
            f"gateway: {len(sent)} of {orders} orders placed over HTTP by {len(self.usernames)} "
            f"user{'' if len(self.usernames) == 1 else 's'} "
            f"(POST /v1/orders p50 {percentile(sent, 0.5):.0f} ms, "
            f"p99 {percentile(sent, 0.99):.0f} ms)"
        ]
        for user, listener in self.listeners.items():
            expected = set(self.placed[user]) - rejected
            lines.append(
                f"  stream of {user}: {len(expected & listener.heard)} of {len(expected)} "
                f"final events heard ({listener.reconnects} reconnects)"
            )
        return lines
