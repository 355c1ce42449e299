"""How fast the analytics worker drains a backlog of order events, and what each costs.

N final order events (60 % completed, the rest failed, cancelled and expired; 200 users,
two assets, over an hour) and, for each, one earlier state's event (`order.processing`,
which counts nothing), wait on the analytics queue. The analytics handler then drains it
in this process, through the program's own consumer (16 in flight, burst mode), with its
own clients counting their AWS calls: from the first receive to the empty queue. Its
stored views are checked against the same events folded in memory.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from bench.scenarios import aws_calls
from bench.workload import bench_deployment
from order_processor.analytics.store import AnalyticsStore
from order_processor.analytics.views import Views
from order_processor.bootstrap import open_clients
from order_processor.domain.base import utc_now
from order_processor.domain.events import Event, order_event
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.handlers.analytics import AnalyticsHandler
from order_processor.messaging.consumer import Consumer
from order_processor.observability import ANALYTICS, Metrics, count_aws_calls

IN_FLIGHT = 16
STATUSES = [OrderStatus.COMPLETED] * 6 + [
    OrderStatus.FAILED,
    OrderStatus.CANCELLED,
    OrderStatus.EXPIRED,
    OrderStatus.FAILED,
]


def final_orders(count: int, seed: int = 1) -> list[Order]:
    rng = random.Random(seed)
    start = utc_now() - timedelta(hours=1)
    orders = []
    for n in range(count):
        kind = rng.choice([OrderType.MARKET_BUY, OrderType.MARKET_SELL])
        asset, price = rng.choice([("BTC", Decimal(60000)), ("ETH", Decimal(3000))])
        quantity = Decimal(rng.randint(1, 100)) / 1000
        at = start + timedelta(seconds=3600 * n / count)
        status = rng.choice(STATUSES)
        order = Order.place(
            f"bench_user_{rng.randrange(200):03d}",
            OrderCreate(order_type=kind, asset_id=asset, quantity=quantity),
        )
        fields: dict[str, Any] = {
            "status": status,
            "sequence": 3,
            "updated_at": at,
            "issued_at": at - timedelta(milliseconds=rng.randint(5, 400)),
        }
        if status is OrderStatus.COMPLETED:
            fields |= {"price": price, "total_amount": (quantity * price).quantize(Decimal("0.01"))}
        elif status is OrderStatus.FAILED:
            fields["failure_reason"] = "INSUFFICIENT_BALANCE"
        orders.append(order.evolve(**fields))
    return orders


async def drain(endpoint: str, count: int) -> dict[str, Any]:
    orders = final_orders(count)
    events: list[Event] = [order_event(o) for o in orders]
    events += [order_event(o.evolve(status=OrderStatus.PROCESSING, sequence=2)) for o in orders]
    random.Random(2).shuffle(events)
    async with bench_deployment(endpoint, follow=False) as bench:
        resources = bench.settings.resources()
        url = await bench.clients.queue_url(resources.analytics_queue.name)
        for start in range(0, len(events), 10):
            await bench.clients.sqs.send_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(n), "MessageBody": e.body()}
                    for n, e in enumerate(events[start : start + 10])
                ],
            )
        async with open_clients(bench.settings, long_running=True) as clients:
            metrics = Metrics(ANALYTICS)
            for client in (clients.dynamodb, clients.sqs):
                count_aws_calls(client, metrics)
            store = AnalyticsStore(clients.dynamodb, resources.analytics_table)
            handler = AnalyticsHandler(store, metrics=metrics)
            consumer = Consumer(
                sqs=clients.sqs,
                queue_url=url,
                handle_group=handler.handle_group,
                group_of=handler.group_of,
                concurrency=IN_FLIGHT,
                visibility_timeout=60,
                burst=True,
                grace_seconds=10,
            )
            cpu, started = time.process_time(), time.perf_counter()
            await consumer.run()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
            calls = aws_calls([metrics.render().decode()])
            expected = Views()
            for event in events:
                expected.apply(event)
            differences = (await store.report()).differences(expected.report())
    if differences:
        raise AssertionError(f"analytics x {count}: {differences[:5]}")
    completed = sum(o.status is OrderStatus.COMPLETED for o in orders)
    return {
        "final_events": count,
        "completed": completed,
        "events_on_queue": len(events),
        "in_flight": IN_FLIGHT,
        "seconds": round(seconds, 2),
        "events_per_second": round(len(events) / seconds, 1),
        "final_events_per_second": round(count / seconds, 1),
        "aws_calls_by_operation": dict(sorted(calls.items())),
        "dynamodb_calls_per_final_event": round(
            sum(v for k, v in calls.items() if k.startswith("dynamodb.")) / count, 2
        ),
        "sqs_calls_per_event": round(
            sum(v for k, v in calls.items() if k.startswith("sqs.")) / len(events), 3
        ),
        "cpu_ms_per_event": round(cpu * 1000 / len(events), 2),
    }
