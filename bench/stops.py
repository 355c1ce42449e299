"""How long the matcher takes to trigger N waiting conditional orders on one price move
(issue 13), and to move N trailing stops.

Each case seeds N QUEUED orders of one asset straight into the orders table, written the
way the store writes them (`store.items.order_item`: the order with its index
attributes; the holds are not written, the matcher never reads the ledger), then times
`PriceMatcher.apply` of one UpdatePrice in this process: the matcher's own code and its
own clients (a fresh `Metrics(MATCHER)` counting its AWS calls), from the start of
`apply` to its return, i.e. until the last ExecuteOrder is on the commands queue (the
queue's message count is checked afterwards). No worker runs.

- `stops`: N/2 stop-loss sells and N/2 take-profit buys, stops spread from 5.01 to 9.99;
  the price falls from 10 to 5 and triggers all of them.
- `trails_moved`: N trailing stop sells, best prices spread from 5.00 to 9.99 (placed as
  the price rose), trail 1; the price, last 5, rises to 10: every trail moves (one
  conditional UpdateItem each), none fires.
- `trails_triggered`: N trailing stop sells placed at 10, trails spread from 0.01 to 4.99
  (half as amounts, half as percentages); the price falls to 5: none moves, all fire.
- `empty_book`: nothing waiting; the price falls from 10 to 5: what an update costs when
  it can trigger nothing (the matcher's idle cost).
- `quiet_book`: N orders of all eight resting kinds on both sides of the price, none
  within reach; the price falls from 10 to 9: the idle cost with a full book.

Each row's `calls_per_update` is what the update costs before any order is moved or
sent: the price write and the book's queries (AWS calls less the trail moves, the
ExecuteOrder batches and the moves' announcements). Target (issue 23): at most
`CALLS_PER_UPDATE_TARGET` with an empty book.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from bench.scenarios import aws_calls
from bench.workload import bench_deployment
from order_processor.bootstrap import get_admission, get_asset_dao, get_order_dao, open_clients
from order_processor.domain.assets import AssetCreate
from order_processor.domain.base import utc_now
from order_processor.domain.commands import AnyCommand
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.triggers import PriceMove, hold_price, trail_stop
from order_processor.handlers.prices import PriceMatcher
from order_processor.messaging.producer import CommandFactory, Producer
from order_processor.messaging.publisher import EventPublisher
from order_processor.observability import MATCHER, Metrics, count_aws_calls
from order_processor.security.audit import AuditLogger
from order_processor.store.items import order_item
from order_processor.store.orders import OrderDAO

ASSET = "COIN"
HIGH, LOW = Decimal("10"), Decimal("5")
USERS = 1000
SLIPPAGE = Decimal(5)
CASES = ("stops", "trails_moved", "trails_triggered")
EMPTY_BOOK = "empty_book"  # one price move with nothing waiting: the matcher's idle cost
QUIET_BOOK = "quiet_book"  # one price move that reaches none of N waiting orders
CALLS_PER_UPDATE_TARGET = 2
D = Decimal
# A quiet book's orders by kind: (fields, extra) around a price of 10 that falls to 9.
T = OrderType
QUIET_KINDS: tuple[tuple[OrderType, dict[str, Decimal], dict[str, Decimal]], ...] = (
    (T.LIMIT_BUY, {"limit_price": D("4")}, {}),
    (T.LIMIT_SELL, {"limit_price": D("16")}, {}),
    (T.STOP_SELL, {"stop_price": D("4")}, {}),
    (T.STOP_BUY, {"stop_price": D("16")}, {}),
    (T.TAKE_PROFIT_BUY, {"stop_price": D("4")}, {}),
    (T.TAKE_PROFIT_SELL, {"stop_price": D("16")}, {}),
    (T.TRAILING_STOP_SELL, {"trail_amount": D("6")}, {"best_price": D("10"), "stop_price": D("4")}),
    (T.TRAILING_STOP_BUY, {"trail_amount": D("8")}, {"best_price": D("8"), "stop_price": D("16")}),
)


def _spread(n: int, count: int, low: Decimal, high: Decimal) -> Decimal:
    """The n-th of `count` prices from `low` to `high`, to the cent."""
    step = (high - low) / max(count - 1, 1)
    return (low + step * n).quantize(Decimal("0.01"))


def waiting_order(case: str, n: int, count: int) -> Order:
    """The n-th of `count` QUEUED orders of a case, as the saga leaves them once held."""
    user = f"stop_user_{n % USERS:04d}"
    fields: dict[str, Any] = {"asset_id": ASSET, "quantity": Decimal("1")}
    extra: dict[str, Any] = {}
    if case == QUIET_BOOK:
        kind, more, extra = QUIET_KINDS[n % len(QUIET_KINDS)]
        fields |= more
    elif case == "stops":
        kind = OrderType.STOP_SELL if n % 2 == 0 else OrderType.TAKE_PROFIT_BUY
        fields["stop_price"] = _spread(n, count, Decimal("5.01"), Decimal("9.99"))
    else:
        kind = OrderType.TRAILING_STOP_SELL
        if case == "trails_moved":
            best, trail = _spread(n, count, Decimal("5.00"), Decimal("9.99")), Decimal("1")
            fields["trail_amount"] = trail
        else:
            best = HIGH
            trail = _spread(n, count, Decimal("0.01"), Decimal("4.99"))
            if n % 2:
                fields["trail_percent"] = trail * 10  # 0.1 % to 49.9 % of 10
            else:
                fields["trail_amount"] = trail
        extra = {
            "best_price": best,
            "stop_price": trail_stop(
                kind, best, fields.get("trail_amount"), fields.get("trail_percent")
            ),
        }
    order = Order.place(user, OrderCreate(order_type=kind, **fields)).evolve(**extra)
    now = utc_now()
    return order.evolve(
        hold_price=hold_price(order, SLIPPAGE),
        status=OrderStatus.QUEUED,
        step="held",
        sequence=2,
        expires_at=now + timedelta(days=30),
    )


async def seed(client: Any, table: str, orders: Sequence[Order], parallel: int = 4) -> None:
    """BatchWriteItem in 25s, `parallel` at a time (seeding is not what is measured)."""
    chunks = [orders[s : s + 25] for s in range(0, len(orders), 25)]
    limit = asyncio.Semaphore(parallel)

    async def write(chunk: Sequence[Order]) -> None:
        async with limit:
            pending = {table: [{"PutRequest": {"Item": order_item(o)}} for o in chunk]}
            while pending:
                response = await client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}

    await asyncio.gather(*(write(c) for c in chunks))


@dataclass(frozen=True)
class Phases:
    """Seconds spent in each part of `apply`, accumulated by the wrappers below."""

    seconds: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, started: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def lasted(self, name: str) -> None:
        """`name` lasted from its start until now (parts that run side by side)."""
        self.seconds[name] = time.perf_counter() - self.started[name]


@dataclass(frozen=True)
class TimedOrders(OrderDAO):
    phases: Phases = field(default_factory=Phases)

    async def reached(self, asset_id: str, price: Decimal, move: PriceMove) -> list[Order]:
        started = time.perf_counter()
        try:
            return await super().reached(asset_id, price, move)
        finally:
            self.phases.add("query_book", started)

    async def move_trail(self, order: Order, best: Decimal, stop: Decimal) -> Order:
        """The trail moves last from the first one's start to the last one's end."""
        self.phases.started.setdefault("move_trails", time.perf_counter())
        try:
            return await super().move_trail(order, best, stop)
        finally:
            self.phases.lasted("move_trails")


@dataclass(frozen=True)
class TimedProducer(Producer):
    phases: Phases = field(default_factory=Phases)

    async def send_batch(self, commands: Sequence[AnyCommand], **options: Any) -> list[str]:
        started = time.perf_counter()
        try:
            return await super().send_batch(commands, **options)
        finally:
            self.phases.add("send", started)


async def one_move(
    endpoint: str,
    case: str,
    count: int,
    *,
    matcher_endpoint: str | None = None,
    latency_ms: float = 0,
) -> dict[str, Any]:
    """One case: seeded through `endpoint`, the matcher's calls through `matcher_endpoint`
    (a latency proxy in front of the same emulator, `latency_ms` its delay) if given."""
    start, price = {"trails_moved": (LOW, HIGH), QUIET_BOOK: (HIGH, HIGH - 1)}.get(
        case, (HIGH, LOW)
    )
    count = 0 if case == EMPTY_BOOK else count
    async with bench_deployment(endpoint, follow=False) as bench:
        resources = bench.settings.resources()
        settings = bench.settings.model_copy(update={"endpoint_url": matcher_endpoint or endpoint})
        await get_asset_dao(bench.clients).create_asset(
            AssetCreate(asset_id=ASSET, name="Coin", price=start)
        )
        orders = [waiting_order(case, n, count) for n in range(count)]
        seeding = time.monotonic()
        await seed(bench.clients.dynamodb, resources.orders_table, orders)
        seeded_in = time.monotonic() - seeding
        update = CommandFactory(bench.tokens).update_price(ASSET, price)
        async with open_clients(settings, long_running=True) as clients:
            metrics = Metrics(MATCHER)
            for client in (clients.dynamodb, clients.sqs, clients.sns):
                count_aws_calls(client, metrics)
            phases = Phases()
            base = get_order_dao(clients)
            matcher = PriceMatcher(
                assets=get_asset_dao(clients),
                orders=TimedOrders(base.client, base.table, phases=phases),
                commands=TimedProducer(clients.sqs, bench.commands_url, fifo=True, phases=phases),
                admission=get_admission(settings),
                publisher=EventPublisher(clients.sns, await clients.topic_arn(bench.commands_url)),
                audit=AuditLogger(),
                metrics=metrics,
            )
            before = aws_calls([metrics.render().decode()])
            cpu, started = time.process_time(), time.perf_counter()
            sent = await matcher.apply(update)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
            after = aws_calls([metrics.render().decode()])
            moved = int(metrics.value("trailing_stops_moved_total"))
        attributes = await bench.clients.sqs.get_queue_attributes(
            QueueUrl=bench.commands_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        on_queue = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    expected_moved, expected_sent = {"trails_moved": (count, 0), QUIET_BOOK: (0, 0)}.get(
        case, (0, count)
    )
    if (moved, len(sent), on_queue) != (expected_moved, expected_sent, expected_sent):
        raise AssertionError(
            f"{case} x {count}: {moved} trails moved, {len(sent)} ExecuteOrders sent, "
            f"{on_queue} on the queue; expected {expected_moved}, {expected_sent}, {expected_sent}"
        )
    calls = {k: after[k] - before[k] for k in sorted(after) if after[k] - before[k]}
    handled = max(moved, len(sent))
    return {
        "case": case,
        "orders": count,
        "price_move": f"{start} -> {price}",
        "latency_ms": latency_ms,
        "seconds": round(seconds, 3),
        "execute_orders_sent": len(sent),
        "execute_orders_on_queue": on_queue,
        "trails_moved": moved,
        "orders_per_second": round(handled / seconds, 1) if handled else 0.0,
        "aws_calls": sum(calls.values()),
        "calls_per_update": calls_per_update(calls, moved),
        "aws_calls_by_operation": calls,
        "matcher_cpu_seconds": round(cpu, 3),
        "phase_seconds": {k: round(v, 3) for k, v in phases.seconds.items()},
        "seeded_in_seconds": round(seeded_in, 1),
    }


def calls_per_update(calls: dict[str, int], moved: int) -> int:
    """The price write and the book's queries: every DynamoDB call but the trail moves."""
    dynamodb = sum(n for operation, n in calls.items() if operation.startswith("dynamodb."))
    return dynamodb - moved
