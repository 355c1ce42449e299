"""Wiring only: sweep every interval until SIGTERM/SIGINT, or once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from order_processor.config import QueueKind, Settings
from order_processor.dependencies import get_order_dao, get_token_manager, open_clients
from order_processor.messaging.producer import Producer
from order_processor.saga.expiry import ExpirySweeper
from workers.runtime import configure_logging, on_stop_signals

log = logging.getLogger(__name__)


async def serve(
    settings: Settings, *, interval: float, once: bool, clock: Callable[[], datetime]
) -> None:
    tokens = get_token_manager(settings)
    async with open_clients(settings) as clients:
        url = await clients.queue_url(settings.resources().commands_queue.name)
        fifo = settings.queue_kind is QueueKind.FIFO
        sweeper = ExpirySweeper(
            get_order_dao(clients), Producer(clients.sqs, url, fifo=fifo), tokens
        )
        stopping = asyncio.Event()
        on_stop_signals(stopping.set)
        while True:
            sent = await sweeper.sweep(clock())
            log.info("expiry sweep: %d order(s) due", len(sent))
            if once:
                return
            try:
                await asyncio.wait_for(stopping.wait(), interval)
                return
            except TimeoutError:
                continue


def run(settings: Settings, *, interval: float, once: bool, clock: Callable[[], datetime]) -> int:
    configure_logging()
    asyncio.run(serve(settings, interval=interval, once=once, clock=clock))
    return 0
