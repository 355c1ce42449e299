"""Wiring only: expiry and recovery every interval until SIGTERM/SIGINT, or once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from order_processor.bootstrap import get_order_dao, get_token_manager, open_clients
from order_processor.config import QueueKind, Settings
from order_processor.handlers.sweeper import ExpirySweeper
from order_processor.messaging.producer import Producer
from order_processor.observability import HealthServer, Metrics
from workers.runtime import configure_logging, on_stop_signals

log = logging.getLogger(__name__)


async def serve(
    settings: Settings,
    *,
    interval: float,
    once: bool,
    clock: Callable[[], datetime],
    metrics_port: int | None = None,
) -> None:
    tokens = get_token_manager(settings)
    metrics = Metrics()
    health = HealthServer(metrics)
    if metrics_port is not None:
        log.info("metrics on port %d", await health.start(metrics_port))
    try:
        async with open_clients(settings) as clients:
            url = await clients.queue_url(settings.resources().commands_queue.name)
            fifo = settings.queue_kind is QueueKind.FIFO
            sweeper = ExpirySweeper(
                get_order_dao(clients),
                Producer(clients.sqs, url, fifo=fifo),
                tokens,
                recovery_age=settings.recovery_age,
                metrics=metrics,
            )
            stopping = asyncio.Event()
            on_stop_signals(stopping.set)
            health.ready = True
            while True:
                now = clock()
                expired = await sweeper.sweep(now)
                recovered = await sweeper.recover(now)
                log.info("sweep: %d order(s) due, %d stalled", len(expired), len(recovered))
                if once:
                    return
                try:
                    await asyncio.wait_for(stopping.wait(), interval)
                    return
                except TimeoutError:
                    continue
    finally:
        await health.stop()


def run(
    settings: Settings,
    *,
    interval: float,
    once: bool,
    clock: Callable[[], datetime],
    metrics_port: int | None = None,
) -> int:
    configure_logging(settings)
    asyncio.run(
        serve(settings, interval=interval, once=once, clock=clock, metrics_port=metrics_port)
    )
    return 0
