"""A Server-Sent Events client for the app in process: httpx's ASGI transport waits for
the whole body, which an event stream never ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI


@dataclass
class OpenStream:
    status: int
    headers: dict[str, str]
    chunks: asyncio.Queue[bytes | None]
    buffer: str = ""
    ended: bool = False
    frames_read: list[str] = field(default_factory=list)

    async def frames(self, count: int, wait: float = 2.0) -> list[str]:
        """The next `count` frames (fewer if the stream ends first)."""
        found: list[str] = []
        while len(found) < count:
            if "\n\n" in self.buffer:
                frame, self.buffer = self.buffer.split("\n\n", 1)
                found.append(frame)
                continue
            if self.ended:
                break
            chunk = await asyncio.wait_for(self.chunks.get(), wait)
            if chunk is None:
                self.ended = True
            else:
                self.buffer += chunk.decode()
        self.frames_read += found
        return found

    async def rest(self, wait: float = 2.0) -> list[str]:
        """Every frame until the stream ends."""
        return await self.frames(10**6, wait)


def events_of(frames: list[str]) -> list[dict[str, str]]:
    """Each frame's fields (comments and retry-only frames left out)."""
    parsed = []
    for frame in frames:
        fields = dict(
            line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            parsed.append(fields)
    return parsed


@contextlib.asynccontextmanager
async def open_stream(
    app: FastAPI, headers: dict[str, str], address: str = "203.0.113.7"
) -> AsyncIterator[OpenStream]:
    started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
    disconnected = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.set_result(message)
        elif message["type"] == "http.response.body":
            chunks.put_nowait(message.get("body", b""))
            if not message.get("more_body"):
                chunks.put_nowait(None)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/stream",
        "raw_path": b"/v1/stream",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": (address, 5000),
        "server": ("gateway.test", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        start = await asyncio.wait_for(started, 2)
        heads = {k.decode(): v.decode() for k, v in start["headers"]}
        yield OpenStream(int(start["status"]), heads, chunks)
    finally:
        disconnected.set()
        await asyncio.wait_for(task, 2)
