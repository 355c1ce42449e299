"""The parts the long-running programs are built from: the saga over DynamoDB, the
program's clients with their calls counted, its metrics and readiness, a consumer of its
queue, and the queue's own redrive policy. The serve loops (`programs`) only put them
together."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from order_processor.bootstrap.clients import AwsClients, open_clients
from order_processor.bootstrap.readiness import checks_for
from order_processor.bootstrap.runtime import Lifecycle
from order_processor.config import ConfigError, Settings
from order_processor.handlers.analytics import AnalyticsHandler
from order_processor.handlers.cache import CacheHandler
from order_processor.handlers.commands import CommandHandler
from order_processor.handlers.prices import PriceMatcher
from order_processor.messaging.consumer import Consumer
from order_processor.messaging.publisher import EventPublisher
from order_processor.observability import HealthServer, Metrics, Readiness, count_aws_calls
from order_processor.observability.metrics import Spec
from order_processor.saga.decision import Limits
from order_processor.saga.engine import Saga
from order_processor.saga.faults import Faults
from order_processor.store.ledger import DynamoLedger

log = logging.getLogger(__name__)


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
            currencies=frozenset(settings.currencies),
            fx_spread_percent=settings.fx_spread_percent,
            fx_max_age=settings.fx_max_age,
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
        handler: CommandHandler | PriceMatcher | AnalyticsHandler | CacheHandler,
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
        """Start-up done: answer ready (while the dependencies answer). What start-up made
        (botocore's service models, pydantic's validators, the clients: about 100,000
        objects) lives as long as the program, so it is frozen out of the garbage
        collector's reach, once collected (nothing unreachable is kept): a full
        collection no longer walks it again and again."""
        gc.collect()
        gc.freeze()
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
