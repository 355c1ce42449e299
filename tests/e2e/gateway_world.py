"""A whole deployment behind the gateway, for end-to-end tests over HTTP: the emulator's
deployment, a private redis-server, the order worker, the limit matcher, the cache worker
and the gateway, every one a real process; and what a client does with it (log in, follow
the stream, open streams by the thousand)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from order_processor.deployment.emulator import free_port
from order_processor.deployment.redis_server import RedisServer
from order_processor.domain.events import Event
from tests.e2e.harness import Harness
from tests.support import CLI

PASSWORD = "Corr3ct-horse!"
REDIS_CHECK = "read model (redis)"
T = TypeVar("T")


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_gateway(harness: Harness) -> GatewayProcess:
    """`order-processor gateway` on free ports, as the harness starts its workers."""
    port, metrics_port = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="gateway-", suffix=".log", delete=False)  # noqa: SIM115
    harness.logs.append(Path(log.name))
    process = subprocess.Popen(
        [CLI, "gateway", "--port", str(port), "--metrics-port", str(metrics_port)],
        env=harness.worker_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return GatewayProcess(process, port, metrics_port, Path(log.name))


async def ready_gateway(harness: Harness, attempts: int = 3) -> GatewayProcess:
    """A gateway started and ready; started again on other ports when another process
    took one of its free ports first (other tests start programs meanwhile)."""
    for _ in range(attempts):
        gateway = start_gateway(harness)
        if await _came_up(gateway):
            return gateway
        if "address already in use" not in gateway.output():
            break
    raise AssertionError(f"the gateway did not start: {gateway.output()}")


async def _came_up(gateway: GatewayProcess) -> bool:
    """True once ready, False once it exited."""

    async def ready_or_exited() -> bool:
        if gateway.process.poll() is not None:
            return True
        try:
            return (await readiness(client, gateway)).status_code == 200
        except httpx.TransportError:
            return False

    async with local_client(gateway) as client:
        await until(ready_or_exited, "the gateway ready", 60)
    return gateway.process.poll() is None


async def until(
    check: Callable[[], Awaitable[T]], what: str, seconds: float = 30, pause: float = 0.1
) -> T:
    """`check()`'s first truthy answer, or an AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        answer = await check()
        if answer:
            return answer
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(pause)


async def readiness(client: httpx.AsyncClient, gateway: GatewayProcess) -> httpx.Response:
    return await client.get(f"http://127.0.0.1:{gateway.metrics_port}/readyz")


def redis_check(answer: httpx.Response) -> dict[str, Any]:
    """The read model's entry in a `/readyz` answer."""
    [check] = [c for c in answer.json()["checks"] if c["name"] == REDIS_CHECK]
    return dict(check)


async def log_in(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """The `Authorization` header of a fresh session of `username`."""
    answer = await client.post("/v1/sessions", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def local_client(gateway: GatewayProcess, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client whose connections come from `address` (any of 127.0.0.0/8): to the
    gateway, another client address, with its own per-address limits."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=gateway.url, transport=transport, timeout=10)


# The stream


@dataclass(frozen=True)
class Frame:
    """One Server-Sent Events frame: `event` and `id` as sent, `data` its JSON text."""

    event: str
    id: str | None = None
    data: str = ""

    def parsed(self) -> Event:
        return Event.model_validate_json(self.data)


@dataclass
class EventStream:
    status: int
    frames: list[Frame] = field(default_factory=list)
    ended: bool = False

    def events(self) -> list[Event]:
        """The events received, notices (`gap`, `unavailable`) left out."""
        return [f.parsed() for f in self.frames if f.id is not None]

    async def until(self, done: Callable[[list[Event]], bool], seconds: float = 30) -> None:
        async def finished() -> bool:
            return done(self.events())

        await until(finished, f"events on the stream, got {self.frames}", seconds, 0.05)

    async def until_ended(self, seconds: float = 30) -> None:
        async def ended() -> bool:
            return self.ended

        await until(ended, "the stream's end", seconds, 0.05)


async def _read_frames(response: httpx.Response, stream: EventStream) -> None:
    fields: dict[str, str] = {}
    try:
        async for line in response.aiter_lines():
            if not line:
                if "event" in fields:
                    stream.frames.append(
                        Frame(fields["event"], fields.get("id"), fields.get("data", ""))
                    )
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    except httpx.HTTPError:
        pass  # the gateway (or the test) closed it: `ended` says so
    finally:
        stream.ended = True


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, auth: dict[str, str], last_event_id: str | None = None
) -> AsyncIterator[EventStream]:
    """`GET /v1/stream`, its frames read as they come while the block runs."""
    headers = {**auth, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    async with client.stream("GET", "/v1/stream", headers=headers, timeout=None) as response:
        stream = EventStream(response.status_code)
        reader = asyncio.create_task(_read_frames(response, stream))
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def last_id(stream: EventStream) -> str:
    ids = [f.id for f in stream.frames if f.id is not None]
    assert ids, f"no event on the stream: {stream.frames}"
    return ids[-1]


# Many streams from one address


@dataclass
class Flood:
    """`GET /v1/stream` requests by the thousand over raw keep-alive connections (an HTTP
    client library would spend more CPU than the gateway), each naming another address in
    `X-Forwarded-For` (which only a trusted proxy may do): each answer's status and its
    problem's detail; the streams that were accepted are held open until `close()`."""

    port: int
    address: str
    answers: list[tuple[int, str]] = field(default_factory=list)
    held: list[asyncio.StreamWriter] = field(default_factory=list)

    async def send(self, tokens: list[str], connections: int = 32) -> None:
        pending = list(reversed(tokens))
        await asyncio.gather(*(self._connection(pending) for _ in range(connections)))

    async def _connection(self, pending: list[str]) -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(self.address, 0)
        )
        while pending:
            token = pending.pop()
            forged = f"10.{len(pending) >> 8 & 255}.{len(pending) & 255}.1"
            request = (
                "GET /v1/stream HTTP/1.1\r\nHost: gateway\r\n"
                f"Authorization: Bearer {token}\r\nX-Forwarded-For: {forged}\r\n\r\n"
            )
            writer.write(request.encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status = int(head.split(" ", 2)[1])
            if status == 200 and await _ended(reader):  # "unavailable": the model away
                self.answers.append((status, "ended"))
                continue
            if status == 200:  # a stream: it stays open, and so does this connection
                self.answers.append((status, ""))
                self.held.append(writer)
                await self._connection(pending)
                return
            length = next(
                int(line.split(":", 1)[1])
                for line in head.lower().splitlines()
                if line.startswith("content-length:")
            )
            problem = json.loads(await reader.readexactly(length))
            self.answers.append((status, problem["detail"]))
        writer.close()

    def streams(self) -> int:
        """The streams accepted and held open."""
        return self.answers.count((200, ""))

    async def close(self) -> None:
        for writer in self.held:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self.held.clear()


async def _ended(reader: asyncio.StreamReader, wait: float = 1.0) -> bool:
    """True when a stream's chunked body ends at once (its last chunk within `wait`)."""
    seen = b""
    try:
        while not seen.endswith(b"0\r\n\r\n"):
            chunk = await asyncio.wait_for(reader.read(4096), wait)
            if not chunk:
                return True
            seen += chunk
    except TimeoutError:
        return False
    return True


def stop_programs(programs: list[subprocess.Popen[bytes]]) -> None:
    for program in programs:
        if program.poll() is None:
            program.send_signal(signal.SIGTERM)


@contextlib.contextmanager
def hung(redis: RedisServer) -> Iterator[None]:
    """The redis-server stopped (SIGSTOP) for the block: its connections stay open and
    nothing answers, as a Redis that hangs."""
    assert redis.process is not None
    redis.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        redis.process.send_signal(signal.SIGCONT)
