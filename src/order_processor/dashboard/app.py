"""The dashboard's web server: the page (static files, no build step) and
`GET /api/snapshot`. Only GET routes: nothing here writes to AWS."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import math
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiohttp import web

from order_processor.aws import sync_clients
from order_processor.bootstrap import get_order_dao, open_clients
from order_processor.config import Settings
from order_processor.dashboard.audit import AuditSchedule
from order_processor.dashboard.snapshot import Sources, read_snapshot
from order_processor.ops.ledger_audit import LedgerAuditor

DEFAULT_PORT = 8050


@dataclass
class SnapshotCache:
    """One snapshot serves every request within `max_age` seconds: two open pages (or
    one in two tabs) do not double the reads, and concurrent requests wait for one read."""

    sources: Sources
    max_age: float = 1.0
    _value: dict[str, Any] = field(default_factory=dict)
    _at: float = -math.inf
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self) -> dict[str, Any]:
        async with self._lock:
            if time.monotonic() - self._at > self.max_age:
                self._value = await read_snapshot(self.sources)
                self._at = time.monotonic()
            return self._value


def static_folder() -> Path:
    return Path(str(files("order_processor.dashboard") / "static"))


def build_app(cache: SnapshotCache) -> web.Application:
    static = static_folder()

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(static / "index.html")

    async def snapshot(request: web.Request) -> web.Response:
        try:
            return web.json_response(await cache.get(), dumps=_dumps)
        except Exception as exc:  # the page says so and keeps the last numbers it had
            print(f"dashboard: snapshot failed: {exc}", file=sys.stderr, flush=True)
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=503)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/api/snapshot", snapshot)
    app.router.add_static("/static/", static)
    return app


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


@contextlib.asynccontextmanager
async def running_dashboard(
    settings: Settings, host: str, port: int, *, any_port_if_taken: bool = False
) -> AsyncIterator[str]:
    """Serve the dashboard on `host:port` (0: a free port; with `any_port_if_taken`, a
    free one too when `port` is in use) with its own clients, and the audit in the
    background; yields the page's URL."""
    async with open_clients(settings) as clients:
        auditor = LedgerAuditor(
            clients.dynamodb, clients.resources.users_table, get_order_dao(clients)
        )
        audit = AuditSchedule(auditor)
        dynamodb, sqs, sns = sync_clients(settings, "dynamodb", "sqs", "sns")
        sources = Sources(clients, (dynamodb, sqs, sns), audit, settings)
        runner = web.AppRunner(build_app(SnapshotCache(sources)), access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as exc:
                if not (any_port_if_taken and exc.errno == errno.EADDRINUSE):
                    raise
                await web.TCPSite(runner, host, 0).start()
            bound = runner.addresses[0][1]
            auditing = asyncio.create_task(audit.run_forever())
            try:
                yield f"http://{host}:{bound}/"
            finally:
                auditing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await auditing
        finally:
            await runner.cleanup()
            for client in (dynamodb, sqs, sns):
                client.close()
