"""The long-running programs, assembled from the settings: the order worker, the limit
matcher, the expiry sweeper, the analytics worker and the cache worker. `order-processor
worker KIND` and `python -m workers.KIND` both come here (`main`, `run_worker`), so their
options and wiring are written once: the options in `arguments`, what every program does
around its work in `runtime`, the parts in `compose`; here, each program's serve loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

from order_processor.analytics.store import AnalyticsStore
from order_processor.bootstrap.arguments import overrides, worker_parser
from order_processor.bootstrap.cache import open_read_model
from order_processor.bootstrap.clients import (
    get_admission,
    get_asset_dao,
    get_order_dao,
    get_rate_store,
    get_token_manager,
)
from order_processor.bootstrap.compose import build_saga, operated, redrive_of
from order_processor.bootstrap.runtime import (
    Lifecycle,
    configure_logging,
    reachable,
    round_failed,
    stopped_on,
    supervised,
    within_grace,
)
from order_processor.config import ConfigError, QueueKind, Settings
from order_processor.domain.base import utc_now
from order_processor.handlers.analytics import AnalyticsHandler
from order_processor.handlers.cache import CacheHandler
from order_processor.handlers.commands import CommandHandler
from order_processor.handlers.prices import PriceMatcher
from order_processor.handlers.sweeper import ExpirySweeper
from order_processor.messaging.producer import Producer
from order_processor.messaging.publisher import EventPublisher
from order_processor.observability import ANALYTICS, CACHE, MATCHER, SWEEPER, WORKER, Check
from order_processor.saga.faults import Faults
from order_processor.security.audit import AuditLogger
from order_processor.store.failures import DynamoCommandFailures

log = logging.getLogger(__name__)
DEFAULT_REMATCH_SECONDS = 60.0
Program = Callable[[Lifecycle], Coroutine[Any, Any, None]]


def main(kind: str, argv: Sequence[str]) -> int:
    """`python -m workers.KIND [options]`: the settings from the environment."""
    parser = worker_parser(kind)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        check_required(kind, settings)
    except ConfigError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    return run_worker(kind, args, settings)


def check_required(kind: str, settings: Settings) -> None:
    """Fail before connecting if what the program cannot run without is missing: the JWT
    secret (tokens minted or verified), or, for the cache worker (events carry no token),
    the read model's Redis."""
    if kind == "cache":
        settings.required_redis_url()
    else:
        get_token_manager(settings)


def run_worker(kind: str, args: argparse.Namespace, settings: Settings) -> int:
    """Run the program of `kind` with the options `args` (its own kind's parser's) until
    it stops; 2 for a configuration it cannot run with."""
    try:
        settings = settings.overridden(overrides(args))
        configure_logging(settings)
        asyncio.run(supervised(program_of(kind, args, settings)))
    except ConfigError as exc:
        print(f"order-processor worker {kind}: {exc}", file=sys.stderr)
        return 2
    return 0


def program_of(kind: str, args: argparse.Namespace, settings: Settings) -> Program:
    if kind == "limit-matcher":
        return functools.partial(
            serve_limit_matcher, settings, burst=args.burst, rematch=args.rematch_interval
        )
    if kind == "expiry-sweeper":
        now: datetime | None = args.now
        return functools.partial(
            serve_sweeper,
            settings,
            interval=args.interval,
            once=args.once,
            clock=(lambda: now) if now is not None else utc_now,
        )
    if kind == "analytics":
        return functools.partial(serve_analytics, settings, burst=args.burst)
    if kind == "cache":
        return functools.partial(serve_cache, settings, burst=args.burst)
    return functools.partial(serve_order_worker, settings, burst=args.burst)


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
            rates=get_rate_store(clients, settings),
            currencies=frozenset(settings.currencies),
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


async def serve_cache(settings: Settings, life: Lifecycle, *, burst: bool = False) -> None:
    """Every event into the read model until SIGTERM/SIGINT (or, in burst mode, until its
    queue is empty). Redis away does not stop it: not ready (`/readyz` names Redis), its
    messages handed back until Redis answers again."""
    async with (
        operated("cache", settings, CACHE, life) as program,
        open_read_model(settings) as model,
    ):
        clients = program.clients
        program.readiness.checks = [*program.readiness.checks, Check("redis", model.ping)]
        queue = await reachable(clients.queue_url, clients.resources.order_cache_queue.name)
        # Nothing is dead-lettered by the worker (a malformed body is dropped, Redis away is
        # waited out): the queue's own redrive is the backstop, and its role needs no DLQ.
        consumer = program.consumer(
            settings, queue, CacheHandler(model, metrics=program.metrics), burst=burst
        )
        program.ready()
        log.info("cache worker %s:%d serving %s", socket.gethostname(), os.getpid(), queue)
        async with stopped_on(life.stopping, consumer.stop, program.readiness):
            await consumer.run()
