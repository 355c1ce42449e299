"""What every long-running program does around its work, whatever the work: JSON logs,
the stop signals from its first moment, a start-up that waits while AWS is away, periodic
rounds that survive a failure, and work that gets the shutdown grace and no more."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from order_processor.config import Settings
from order_processor.handlers.commands import is_transient_failure
from order_processor.observability import Readiness, configure_json_logs

log = logging.getLogger(__name__)
STARTUP_PAUSE_MAX_SECONDS = 15.0
P = ParamSpec("P")
T = TypeVar("T")


def configure_logging(settings: Settings) -> None:
    """JSON logs, redacted: tokens, passwords, the JWT secret and the Redis URL (it can
    carry a password) never reach a line."""
    secrets = [s.get_secret_value() for s in (settings.jwt_secret, settings.redis_url) if s]
    configure_json_logs(logging.INFO, secrets=secrets)


@dataclass
class Lifecycle:
    """A program's two moments: `started` (serving, ready) and `stopping` (SIGTERM/SIGINT)."""

    stopping: asyncio.Event
    started: asyncio.Event = field(default_factory=asyncio.Event)


async def supervised(serve: Callable[[Lifecycle], Coroutine[Any, Any, None]]) -> None:
    """Run a program; a stop signal before it has started (its AWS calls at start-up can
    take long against a slow endpoint) cancels the start-up, cleanly. Once started, the
    program handles the stop itself (finish within the grace period)."""
    life = Lifecycle(stop_signals())
    program = asyncio.create_task(serve(life))
    stopped = asyncio.create_task(life.stopping.wait())
    started = asyncio.create_task(life.started.wait())
    await asyncio.wait({program, stopped, started}, return_when=asyncio.FIRST_COMPLETED)
    if not program.done() and life.stopping.is_set() and not life.started.is_set():
        log.info("stopped during start-up")
        program.cancel()
    stopped.cancel()
    started.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await program


def stop_signals() -> asyncio.Event:
    """SIGTERM and SIGINT set the event, from the program's first moment (a signal during
    start-up stops the program cleanly instead of killing it)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    return stopping


@contextlib.asynccontextmanager
async def stopped_on(
    stopping: asyncio.Event, stop: Callable[[], None], readiness: Readiness
) -> AsyncIterator[None]:
    """While the body runs, a stop signal (even one that came before) calls `stop`, and
    the program stops answering ready."""

    async def forward() -> None:
        await stopping.wait()
        readiness.stopping = True
        stop()

    forwarding = asyncio.create_task(forward())
    try:
        yield
    finally:
        forwarding.cancel()


async def reachable(call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """A start-up lookup (a queue's URL, the topic, a redrive policy), waiting while AWS is
    away: a program started during an outage waits for the endpoint (not ready, one line
    a try) instead of exiting into a restart loop. What is not transient (a queue that
    does not exist, a permission) still ends the start-up. A stop signal cancels it."""
    pause = 1.0
    while True:
        try:
            return await call(*args, **kwargs)
        except Exception as exc:
            if not is_transient_failure(exc):
                raise
            log.warning("starting: AWS is unreachable; trying again in %.0f s: %s", pause, exc)
        await asyncio.sleep(pause * random.uniform(0.5, 1))  # noqa: S311
        pause = min(pause * 2, STARTUP_PAUSE_MAX_SECONDS)


def round_failed(what: str, exc: Exception) -> None:
    """A periodic round that failed is tried again at the next: AWS briefly away (one line,
    no traceback: an outage would otherwise fill the logs), or a bug (its traceback)."""
    if is_transient_failure(exc):
        log.warning("%s failed, tried again next round: %s", what, exc)
    else:
        log.error("%s failed, tried again next round", what, exc_info=exc)


async def within_grace(
    work: Coroutine[Any, Any, None], stopping: asyncio.Event, settings: Settings
) -> bool:
    """Run `work`; a stop signal meanwhile gives it the shutdown grace, then cancels it
    (AWS holding its answers must not keep a stopped program alive). True if it finished
    (its exception raised), False if it was cancelled."""
    task = asyncio.create_task(work)
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if not task.done():
        await asyncio.wait({task}, timeout=settings.shutdown_grace_seconds)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True
