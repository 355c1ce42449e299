"""Liveness, readiness and the metrics endpoint of a long-running program, with aiohttp.

`Readiness` runs a program's dependency checks (each table it writes, each queue it reads
or sends to, the topic it publishes to: see `bootstrap.readiness`) concurrently, each with
a short timeout, and keeps the answer for a few seconds so that probes never become load
on AWS. `HealthServer` serves, on GET (and HEAD) only: `/metrics` (the program's registry
in the Prometheus text format), `/livez` (the process and its event loop answer) and
`/readyz` (200 when started, not stopping and every check passes; 503 with the failing
checks otherwise). Idle or slow clients are dropped after a few seconds; an oversized
request line is refused by aiohttp's parser.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from order_processor.observability.metrics import Metrics

CHECK_TIMEOUT_SECONDS = 2.0
CACHE_SECONDS = 5.0
IDLE_CLIENT_SECONDS = 5.0


@dataclass(frozen=True)
class Check:
    """One dependency: `probe` returns normally when it is usable and raises otherwise.
    One not `required` is reported and never makes the program unready (the gateway's
    Redis: without it reads fall back to DynamoDB, and pulling every replica out of the
    Service because Redis is away would take the API down with it)."""

    name: str
    probe: Callable[[], Awaitable[object]]
    required: bool = True


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    required: bool = True


@dataclass
class Readiness:
    checks: Sequence[Check] = ()
    timeout: float = CHECK_TIMEOUT_SECONDS
    cache_seconds: float = CACHE_SECONDS
    started: bool = False
    stopping: bool = False
    clock: Callable[[], float] = time.monotonic
    _cached: tuple[float, list[CheckResult]] | None = None
    _running: asyncio.Task[list[CheckResult]] | None = field(default=None, repr=False)

    async def results(self) -> list[CheckResult]:
        """Every check's result, at most `cache_seconds` old; probes arriving together
        share one run."""
        if self._cached is not None and self.clock() - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run())
        results = await asyncio.shield(self._running)
        self._cached = (self.clock(), results)
        return results

    async def ready(self) -> tuple[bool, list[CheckResult]]:
        if not self.started or self.stopping:
            state = "stopping" if self.stopping else "starting"
            return False, [CheckResult("program", False, state)]
        results = await self.results()
        return all(result.ok for result in results if result.required), results

    async def _run(self) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._one(check) for check in self.checks)))

    async def _one(self, check: Check) -> CheckResult:
        try:
            await asyncio.wait_for(check.probe(), self.timeout)
        except TimeoutError:
            detail = f"no answer within {self.timeout:g} s"
            return CheckResult(check.name, False, detail, check.required)
        except Exception as exc:
            return CheckResult(check.name, False, describe(exc), check.required)
        return CheckResult(check.name, True, required=check.required)


def describe(exc: BaseException) -> str:
    """One line: the AWS error code and message when there is one."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"[:300]


@dataclass
class HealthServer:
    metrics: Metrics
    readiness: Readiness = field(default_factory=Readiness)
    _runner: web.AppRunner | None = None

    async def start(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve on host:port (0: any free port); returns the port bound."""
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(self.metrics.registry))
        app.router.add_get("/livez", self._live)
        app.router.add_get("/readyz", self._ready)
        # A malformed request (a scanner, a 70 KB request line) is answered 400 by aiohttp's
        # parser; its traceback would only fill the program's log.
        protocol_errors = logging.getLogger(f"{__name__}.protocol")
        protocol_errors.setLevel(logging.CRITICAL)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=IDLE_CLIENT_SECONDS,
            shutdown_timeout=1,
            logger=protocol_errors,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError:
            await self.stop()
            raise
        bound: int = self._runner.addresses[0][1]
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _live(self, _request: web.Request) -> web.Response:
        return web.Response(text="alive\n")

    async def _ready(self, _request: web.Request) -> web.Response:
        ready, results = await self.readiness.ready()
        body = {
            "ready": ready,
            "checks": [
                {
                    "name": r.name,
                    "ok": r.ok,
                    **({"detail": r.detail} if r.detail else {}),
                    **({} if r.required else {"required": False}),
                }
                for r in results
            ],
        }
        return web.Response(
            status=200 if ready else 503,
            text=json.dumps(body) + "\n",
            content_type="application/json",
        )
