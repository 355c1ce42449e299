"""Wiring only: settings → clients → DAOs → saga context → handler → consumer."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from order_processor.bootstrap import (
    AwsClients,
    get_admission,
    get_asset_dao,
    get_asset_transaction_dao,
    get_balance_dao,
    get_order_dao,
    get_token_manager,
    get_user_dao,
    open_clients,
)
from order_processor.config import Settings
from order_processor.handlers.commands import CommandHandler
from order_processor.messaging.consumer import Consumer
from order_processor.messaging.publisher import EventPublisher
from order_processor.observability import HealthServer, Metrics, count_aws_calls
from order_processor.saga.context import Limits, SagaContext
from order_processor.saga.faults import Faults
from order_processor.security.audit import AuditLogger
from order_processor.store.lock import UserLock
from workers.runtime import Redrive, configure_logging, on_stop_signals, redrive_of, topic_arn


async def resolve(clients: AwsClients) -> tuple[str, str, Redrive]:
    """The commands queue URL, the events topic ARN and the queue's redrive policy."""
    url = await clients.queue_url(clients.resources.commands_queue.name)
    return url, await topic_arn(clients, url), await redrive_of(clients, url)


def build_handler(
    settings: Settings,
    clients: AwsClients,
    topic_arn: str,
    metrics: Metrics,
    max_receive_count: int | None = None,
) -> CommandHandler:
    worker_id = f"{socket.gethostname()}:{os.getpid()}"
    context = SagaContext(
        dynamodb=clients.dynamodb,
        users=get_user_dao(clients),
        balances=get_balance_dao(clients),
        assets=get_asset_dao(clients),
        asset_trades=get_asset_transaction_dao(clients),
        orders=get_order_dao(clients),
        lock=UserLock(
            clients.dynamodb,
            clients.resources.users_table,
            lease_seconds=settings.lock_lease_seconds,
            worker_id=worker_id,
        ),
        publisher=EventPublisher(clients.sns, topic_arn),
        limits=Limits(
            max_order_value=settings.max_order_value,
            daily_deposit=settings.daily_deposit_limit,
            daily_withdraw=settings.daily_withdraw_limit,
        ),
        faults=Faults.from_env(),
        metrics=metrics,
    )
    receives = max_receive_count or settings.max_receive_count
    return CommandHandler(context, get_admission(settings), AuditLogger(), receives)


async def serve(
    settings: Settings,
    *,
    concurrency: int | None = None,
    burst: bool = False,
    metrics_port: int | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (then finish within the grace period) or, in burst mode,
    until the commands queue is empty. With `metrics_port`, answer /metrics, /livez and
    /readyz on it."""
    get_token_manager(settings)  # fail before connecting if the secret is missing
    metrics = Metrics()
    health = HealthServer(metrics)
    if metrics_port is not None:
        port = await health.start(metrics_port)
        logging.getLogger(__name__).info("metrics on port %d", port)
    try:
        async with open_clients(settings) as clients:
            for client in (clients.dynamodb, clients.sqs, clients.sns):
                count_aws_calls(client, metrics)
            queue, topic, redrive = await resolve(clients)
            handler = build_handler(settings, clients, topic, metrics, redrive.max_receive_count)
            consumer = Consumer(
                sqs=clients.sqs,
                queue_url=queue,
                handle_group=handler.handle_group,
                group_of=handler.group_of,
                concurrency=concurrency or settings.concurrency,
                visibility_timeout=settings.visibility_timeout,
                burst=burst,
                grace_seconds=settings.shutdown_grace_seconds,
                dead_letter_url=redrive.dead_letter_url,
            )
            metrics.gauge("messages_in_flight", lambda: consumer.in_flight)

            def stop() -> None:
                health.ready = False
                consumer.stop()

            on_stop_signals(stop)
            health.ready = True
            logging.getLogger(__name__).info("order worker serving %s", queue)
            await consumer.run()
    finally:
        await health.stop()


def run(settings: Settings, **options: Any) -> int:
    configure_logging(settings)
    asyncio.run(serve(settings, **options))
    return 0
