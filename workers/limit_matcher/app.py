"""Wiring only: the price-updates queue, the matcher, the commands queue."""

from __future__ import annotations

import asyncio
import logging

from order_processor.bootstrap import (
    get_admission,
    get_asset_dao,
    get_order_dao,
    open_clients,
)
from order_processor.config import QueueKind, Settings
from order_processor.domain.base import utc_now
from order_processor.handlers.prices import PriceMatcher
from order_processor.messaging.consumer import Consumer
from order_processor.messaging.producer import Producer
from order_processor.messaging.publisher import EventPublisher
from order_processor.saga.faults import Faults
from order_processor.security.audit import AuditLogger
from workers.runtime import configure_logging, on_stop_signals, topic_arn

log = logging.getLogger(__name__)


DEFAULT_REMATCH_SECONDS = 60.0


async def serve(
    settings: Settings, *, burst: bool = False, rematch_interval: float | None = None
) -> None:
    """Price updates until SIGTERM/SIGINT (or, in burst mode, until the queue is empty),
    and every `rematch_interval` seconds (default 60; 0: never) a rematch of the book
    against current prices. In burst mode one rematch after the drain, only if asked."""
    admission = get_admission(settings)
    resources = settings.resources()
    async with open_clients(settings) as clients:
        prices_url = await clients.queue_url(resources.price_updates_queue.name)
        commands_url = await clients.queue_url(resources.commands_queue.name)
        matcher = PriceMatcher(
            assets=get_asset_dao(clients),
            orders=get_order_dao(clients),
            commands=Producer(
                clients.sqs, commands_url, fifo=settings.queue_kind is QueueKind.FIFO
            ),
            admission=admission,
            publisher=EventPublisher(clients.sns, await topic_arn(clients, commands_url)),
            audit=AuditLogger(),
            faults=Faults.from_env(),
        )
        consumer = Consumer(
            sqs=clients.sqs,
            queue_url=prices_url,
            handle_group=matcher.handle_group,
            group_of=matcher.group_of,
            concurrency=settings.concurrency,
            visibility_timeout=settings.visibility_timeout,
            burst=burst,
            grace_seconds=settings.shutdown_grace_seconds,
        )
        on_stop_signals(consumer.stop)
        if burst:
            await consumer.run()
            if rematch_interval:
                await matcher.rematch(utc_now())
            return
        interval = DEFAULT_REMATCH_SECONDS if rematch_interval is None else rematch_interval
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
        except Exception:  # the next round tries again; the updates go on meanwhile
            log.exception("rematch failed")


def run(settings: Settings, *, burst: bool = False, rematch_interval: float | None = None) -> int:
    configure_logging(settings)
    asyncio.run(serve(settings, burst=burst, rematch_interval=rematch_interval))
    return 0
