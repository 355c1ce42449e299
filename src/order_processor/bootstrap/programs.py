"""The long-running programs, assembled from the settings: the order worker, the limit
matcher, the expiry sweeper and the analytics worker. `order-processor worker KIND` and
`python -m workers.KIND` both come here (`main`), so their options and wiring are
written once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from order_processor.analytics.store import AnalyticsStore
from order_processor.bootstrap.clients import (
    AwsClients,
    get_admission,
    get_asset_dao,
    get_order_dao,
    get_token_manager,
    open_clients,
)
from order_processor.bootstrap.readiness import checks_for
from order_processor.config import ConfigError, QueueKind, Settings
from order_processor.domain.base import utc_now
from order_processor.handlers.analytics import AnalyticsHandler
from order_processor.handlers.commands import CommandHandler, is_transient_failure
from order_processor.handlers.prices import PriceMatcher
from order_processor.handlers.sweeper import ExpirySweeper
from order_processor.messaging.consumer import Consumer
from order_processor.messaging.producer import Producer
from order_processor.messaging.publisher import EventPublisher
from order_processor.observability import (
    ANALYTICS,
    MATCHER,
    SWEEPER,
    WORKER,
    HealthServer,
    Metrics,
    Readiness,
    configure_json_logs,
    count_aws_calls,
)
from order_processor.observability.metrics import Spec
from order_processor.saga.decision import Limits
from order_processor.saga.engine import Saga
from order_processor.saga.faults import Faults
from order_processor.security.audit import AuditLogger
from order_processor.store.failures import DynamoCommandFailures
from order_processor.store.ledger import DynamoLedger

log = logging.getLogger(__name__)
KINDS = ("orders", "limit-matcher", "expiry-sweeper", "analytics")
DEFAULT_REMATCH_SECONDS = 60.0
STARTUP_PAUSE_MAX_SECONDS = 15.0
P = ParamSpec("P")
T = TypeVar("T")


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", type=_concurrency, help="messages in flight (default: setting)"
    )
    parser.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    parser.add_argument(
        "--metrics-port",
        type=_port,
        help="serve /metrics, /livez, /readyz on this port (0: any free one; default: "
        "ORDER_PROCESSOR_METRICS_PORT, unset: none)",
    )
    parser.add_argument(
        "--interval", type=float, default=30.0, help="sweeper: seconds between sweeps"
    )
    parser.add_argument("--once", action="store_true", help="sweeper: one sweep, then exit")
    parser.add_argument(
        "--now", type=datetime.fromisoformat, help="sweeper: the time to sweep at (for tests)"
    )
    parser.add_argument(
        "--rematch-interval",
        type=float,
        help="limit-matcher: seconds between rematches of the book against current prices "
        "(default 60, 0: never; with --burst: one rematch after the drain)",
    )


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be from 0 to 65535")
    return value


def _concurrency(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("must be from 1 to 1000")
    return value


def main(kind: str, argv: Sequence[str]) -> int:
    """`python -m workers.KIND [options]`: the settings from the environment."""
    parser = argparse.ArgumentParser(prog=f"python -m workers.{kind.replace('-', '_')}")
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        get_token_manager(settings)  # fail before connecting if the secret is missing
    except ConfigError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    return run_worker(kind, args, settings)


def run_worker(kind: str, args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings)
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": args.metrics_port})
    if args.concurrency is not None:  # validated by its argument type
        settings = settings.model_copy(update={"concurrency": args.concurrency})
    program: Callable[[Lifecycle], Coroutine[Any, Any, None]]
    if kind == "limit-matcher":
        program = functools.partial(
            serve_limit_matcher, settings, burst=args.burst, rematch=args.rematch_interval
        )
    elif kind == "expiry-sweeper":
        now: datetime | None = args.now
        program = functools.partial(
            serve_sweeper,
            settings,
            interval=args.interval,
            once=args.once,
            clock=(lambda: now) if now is not None else utc_now,
        )
    elif kind == "analytics":
        program = functools.partial(serve_analytics, settings, burst=args.burst)
    else:
        program = functools.partial(serve_order_worker, settings, burst=args.burst)
    try:
        asyncio.run(supervised(program))
    except ConfigError as exc:
        print(f"order-processor worker {kind}: {exc}", file=sys.stderr)
        return 2
    return 0


def configure_logging(settings: Settings) -> None:
    """JSON logs, redacted: tokens, passwords and the JWT secret never reach a line."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    configure_json_logs(logging.INFO, secrets=[secret] if secret else [])


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


@dataclass(frozen=True)
class Redrive:
    """The queue's own redrive policy: where dead letters go, after how many receives."""

    dead_letter_url: str | None
    max_receive_count: int | None


async def redrive_of(clients: AwsClients, queue: str) -> Redrive:
    attributes = await clients.sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["RedrivePolicy"]
    )
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return Redrive(None, None)
    parsed = json.loads(policy)
    name = str(parsed["deadLetterTargetArn"]).rsplit(":", 1)[-1]
    return Redrive(await clients.queue_url(name), int(parsed["maxReceiveCount"]))


def build_saga(
    settings: Settings, clients: AwsClients, events: EventPublisher, metrics: Metrics
) -> Saga:
    resources = clients.resources
    faults = Faults.from_env()
    return Saga(
        ledger=DynamoLedger(
            clients.dynamodb,
            resources.users_table,
            resources.orders_table,
            resources.inventory_table,
        ),
        events=events,
        limits=Limits(
            max_order_value=settings.max_order_value,
            daily_deposit=settings.daily_deposit_limit,
            daily_withdraw=settings.daily_withdraw_limit,
            stop_slippage_percent=settings.stop_slippage_percent,
            clock_skew=settings.clock_skew,
        ),
        clock=faults.now,
        faults=faults,
        metrics=metrics,
    )


@dataclass
class Operated:
    """What every long-running program shares: its clients (calls counted), its metrics,
    its readiness (served on the metrics port when one is configured)."""

    clients: AwsClients
    metrics: Metrics
    readiness: Readiness
    life: Lifecycle

    def consumer(
        self,
        settings: Settings,
        queue_url: str,
        handler: CommandHandler | PriceMatcher | AnalyticsHandler,
        *,
        burst: bool,
        dead_letter_url: str | None = None,
    ) -> Consumer:
        """The program's consumer of `queue_url`, its messages in flight a gauge."""
        consumer = Consumer(
            sqs=self.clients.sqs,
            queue_url=queue_url,
            handle_group=handler.handle_group,
            group_of=handler.group_of,
            concurrency=settings.concurrency,
            visibility_timeout=settings.visibility_timeout,
            burst=burst,
            grace_seconds=settings.shutdown_grace_seconds,
            dead_letter_url=dead_letter_url,
        )
        self.metrics.gauge("messages_in_flight", lambda: consumer.in_flight)
        return consumer

    def ready(self) -> None:
        """Start-up done: answer ready (while the dependencies answer)."""
        self.readiness.started = True
        self.life.started.set()


@contextlib.asynccontextmanager
async def operated(
    program: str, settings: Settings, specs: dict[str, Spec], life: Lifecycle
) -> AsyncIterator[Operated]:
    metrics = Metrics(specs)
    readiness = Readiness()
    health = HealthServer(metrics, readiness)
    try:
        if settings.metrics_port is not None:
            host, port = settings.metrics_host, settings.metrics_port
            try:
                port = await health.start(port, host)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} "
                    "(ORDER_PROCESSOR_METRICS_HOST, ORDER_PROCESSOR_METRICS_PORT)"
                ) from None
            log.info("metrics, liveness and readiness on %s:%d", host, port)
        async with open_clients(settings, long_running=True) as clients:
            for client in (clients.dynamodb, clients.sqs, clients.sns):
                count_aws_calls(client, metrics)
            readiness.checks = checks_for(program, clients)
            yield Operated(clients, metrics, readiness, life)
    finally:
        await health.stop()


async def serve_order_worker(settings: Settings, life: Lifecycle, *, burst: bool = False) -> None:
    """Until SIGTERM/SIGINT (then finish within the grace period) or, in burst mode,
    until the commands queue is empty."""
    async with operated("orders", settings, WORKER, life) as program:
        clients, metrics = program.clients, program.metrics
        queue = await reachable(clients.queue_url, clients.resources.commands_queue.name)
        events = EventPublisher(clients.sns, await reachable(clients.topic_arn, queue))
        redrive = await reachable(redrive_of, clients, queue)
        handler = CommandHandler(
            saga=build_saga(settings, clients, events, metrics),
            events=events,
            admission=get_admission(settings),
            audit=AuditLogger(),
            failures=DynamoCommandFailures(clients.dynamodb, clients.resources.users_table),
            max_failures=settings.max_failures,
            max_receive_count=redrive.max_receive_count or settings.max_receive_count,
            metrics=metrics,
        )
        consumer = program.consumer(
            settings, queue, handler, burst=burst, dead_letter_url=redrive.dead_letter_url
        )
        program.ready()
        log.info("order worker %s:%d serving %s", socket.gethostname(), os.getpid(), queue)
        async with stopped_on(life.stopping, consumer.stop, program.readiness):
            await consumer.run()


async def serve_limit_matcher(
    settings: Settings, life: Lifecycle, *, burst: bool = False, rematch: float | None = None
) -> None:
    """Price updates until SIGTERM/SIGINT (or, in burst mode, until the queue is empty),
    and every `rematch` seconds (default 60; 0: never) the book rematched against current
    prices. In burst mode one rematch after the drain, only if asked."""
    resources = settings.resources()
    async with operated("limit-matcher", settings, MATCHER, life) as program:
        clients = program.clients
        prices_url = await reachable(clients.queue_url, resources.price_updates_queue.name)
        commands_url = await reachable(clients.queue_url, resources.commands_queue.name)
        topic = await reachable(clients.topic_arn, commands_url)
        matcher = PriceMatcher(
            assets=dataclasses.replace(get_asset_dao(clients), clock_skew=settings.clock_skew),
            orders=get_order_dao(clients),
            commands=Producer(
                clients.sqs, commands_url, fifo=settings.queue_kind is QueueKind.FIFO
            ),
            admission=get_admission(settings),
            publisher=EventPublisher(clients.sns, topic),
            audit=AuditLogger(),
            faults=Faults.from_env(),
            metrics=program.metrics,
        )
        consumer = program.consumer(settings, prices_url, matcher, burst=burst)
        program.ready()
        async with stopped_on(life.stopping, consumer.stop, program.readiness):
            if burst:
                await consumer.run()
                if rematch:
                    await matcher.rematch(utc_now())
                return
            interval = DEFAULT_REMATCH_SECONDS if rematch is None else rematch
            rematching = asyncio.create_task(_rematch_every(matcher, interval))
            try:
                await consumer.run()
            finally:
                rematching.cancel()


async def _rematch_every(matcher: PriceMatcher, interval: float) -> None:
    while interval > 0:
        await asyncio.sleep(interval)
        try:
            await matcher.rematch(utc_now())
        except Exception as exc:  # the next round tries again; the updates go on meanwhile
            round_failed("rematch", exc)


def round_failed(what: str, exc: Exception) -> None:
    """A periodic round that failed is tried again at the next: AWS briefly away (one line,
    no traceback: an outage would otherwise fill the logs), or a bug (its traceback)."""
    if is_transient_failure(exc):
        log.warning("%s failed, tried again next round: %s", what, exc)
    else:
        log.error("%s failed, tried again next round", what, exc_info=exc)


async def serve_sweeper(
    settings: Settings,
    life: Lifecycle,
    *,
    interval: float,
    once: bool,
    clock: Callable[[], datetime],
) -> None:
    """Expiry and recovery every `interval` seconds until SIGTERM/SIGINT, or once."""
    async with operated("expiry-sweeper", settings, SWEEPER, life) as program:
        clients = program.clients
        url = await reachable(clients.queue_url, settings.resources().commands_queue.name)
        sweeper = ExpirySweeper(
            get_order_dao(clients),
            Producer(clients.sqs, url, fifo=settings.queue_kind is QueueKind.FIFO),
            get_token_manager(settings),
            recovery_age=settings.recovery_age,
            metrics=program.metrics,
        )
        program.ready()
        async with stopped_on(life.stopping, lambda: None, program.readiness):
            while not life.stopping.is_set():
                try:
                    sweep = _sweep_once(sweeper, clock(), life.stopping)
                    if not await within_grace(sweep, life.stopping, settings):
                        return  # stopped mid-sweep: the next sweeper sweeps again
                    program.metrics.inc("sweeps_total")
                except Exception as exc:
                    if once:
                        raise
                    round_failed("sweep", exc)
                    program.metrics.inc("sweeps_failed_total")
                if once:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(life.stopping.wait(), interval)


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


async def _sweep_once(sweeper: ExpirySweeper, now: datetime, stopping: asyncio.Event) -> None:
    expired = await sweeper.sweep(now)
    if stopping.is_set():
        return
    recovered = await sweeper.recover(now)
    log.info("sweep: %d order(s) due, %d stalled", len(expired), len(recovered))


async def serve_analytics(settings: Settings, life: Lifecycle, *, burst: bool = False) -> None:
    """Order events into the analytics views until SIGTERM/SIGINT (or, in burst mode,
    until its queue is empty)."""
    async with operated("analytics", settings, ANALYTICS, life) as program:
        clients = program.clients
        queue = await reachable(clients.queue_url, clients.resources.analytics_queue.name)
        redrive = await reachable(redrive_of, clients, queue)
        handler = AnalyticsHandler(
            AnalyticsStore(clients.dynamodb, clients.resources.analytics_table),
            metrics=program.metrics,
            faults=Faults.from_env(),
        )
        consumer = program.consumer(
            settings, queue, handler, burst=burst, dead_letter_url=redrive.dead_letter_url
        )
        program.ready()
        log.info("analytics worker %s:%d serving %s", socket.gethostname(), os.getpid(), queue)
        async with stopped_on(life.stopping, consumer.stop, program.readiness):
            await consumer.run()
