"""The gateway scenario (`--only gateway`): `POST /v1/orders` through one gateway process
against the producer's direct send of the same orders; command to final event through
each; `GET /v1/orders/{id}` from the Redis read model against from DynamoDB; and the
stream's delivery of final events to 1,000 connected SSE clients.

Every HTTP client is an aiohttp coroutine in the benchmark's own process (its CPU is
measured and reported: a client side that saturates a core would be what is measured).
The gateway, the cache worker and the order worker are processes as deployed; Redis is
Debian's redis-server on a free port (`deployment.redis_server`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from bench.gateway_programs import (
    HTTP_CLIENTS,
    PACED_RATE,
    GatewayProcess,
    Stack,
    figures,
    http_session,
    log_in,
    own_cpu_seconds,
    password_hash,
    place_order,
    process_cpu_seconds,
    read_order,
    start_gateway,
    start_program,
    timed_calls,
)
from bench.gateway_stream import stream_delivery
from bench.scenarios import RICH
from bench.workload import (
    Bench,
    Workers,
    bench_deployment,
    seed_users,
    start_workers,
)
from order_processor.deployment.redis_server import running_redis
from order_processor.messaging.producer import Producer

USERS = 100
GET_CLIENTS = 8


@contextlib.asynccontextmanager
async def gateway_stack(endpoint: str, users: int, *, order_worker: bool) -> AsyncIterator[Stack]:
    names = [f"gw_user_{n:04d}" for n in range(users)]
    async with contextlib.AsyncExitStack() as stack:
        bench = await stack.enter_async_context(bench_deployment(endpoint))
        await seed_users(bench.clients, names, RICH, password_hash=password_hash())
        redis = stack.enter_context(running_redis())
        settings = bench.settings.overridden({"redis_url": redis.url})
        programs: list[Workers] = []
        stack.callback(_stop_all, programs)
        programs.append(await asyncio.to_thread(start_program, settings, "workers.cache"))
        if order_worker:
            programs.append(await asyncio.to_thread(start_workers, settings, 1, 32))
        gateway = await asyncio.to_thread(start_gateway, settings)
        programs.append(gateway.program)
        http = await stack.enter_async_context(http_session())
        auth = await log_in(http, gateway.url, names)
        yield Stack(bench, gateway, names, auth, http)


async def gateway_scenario(
    endpoint: str, *, orders: int, streams: int, latency: tuple[float, float]
) -> dict[str, Any]:
    """`latency`: AWS's round trip (ms, jitter) for the reads from DynamoDB."""
    result: dict[str, Any] = {"post": await post_throughput(endpoint, orders)}
    async with gateway_stack(endpoint, USERS, order_worker=True) as stack:
        paced = min(orders, 200)
        result["to_final_event"] = await to_final_event(stack, paced)
        owners = result["to_final_event"].pop("order_ids")
        result["get_order"] = await get_order(stack, owners, latency)
        result["stream"] = await stream_delivery(stack, streams)
    return result


async def post_throughput(endpoint: str, orders: int) -> list[dict[str, Any]]:
    """The same market buys (100 users) sent by HTTP_CLIENTS concurrent clients through the
    gateway, then by as many producers' `send` directly, then by `send_batch` (10 a
    request); no worker runs meanwhile (the queue takes them)."""
    async with gateway_stack(endpoint, USERS, order_worker=False) as stack:
        users = [stack.users[n % len(stack.users)] for n in range(orders)]
        url = stack.gateway.url
        through: list[Callable[[], Awaitable[Any]]] = [
            partial(place_order, stack.http, url, stack.auth[u]) for u in users
        ]
        producer = Producer(stack.bench.clients.sqs, stack.bench.commands_url, fifo=True)
        direct: list[Callable[[], Awaitable[Any]]] = [
            partial(producer.send, c) for c in stack.bench.orders(stack.users, orders)
        ]
        commands = stack.bench.orders(stack.users, orders)
        batched: list[Callable[[], Awaitable[Any]]] = [
            partial(producer.send_batch, commands[n : n + 10]) for n in range(0, orders, 10)
        ]
        rows = []
        for path, calls, per_call in (
            ("gateway POST /v1/orders", through, 1),
            ("Producer.send", direct, 1),
            ("Producer.send_batch (10 a request)", batched, 10),
        ):
            cpu, client_cpu = process_cpu_seconds(stack.gateway.pid), own_cpu_seconds()
            seconds, latencies, _ = await timed_calls(calls, HTTP_CLIENTS)
            gateway_cpu = process_cpu_seconds(stack.gateway.pid) - cpu
            client_cpu = own_cpu_seconds() - client_cpu
            row = {
                "path": path,
                "clients": HTTP_CLIENTS,
                "orders": orders,
                "orders_per_second": round(len(calls) * per_call / seconds, 1),
                "latency_ms": figures(latencies),
                "client_cpu_percent": round(100 * client_cpu / seconds, 1),
            }
            if calls is through:
                row["gateway_cpu_ms_per_order"] = round(gateway_cpu * 1000 / orders, 2)
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    return rows


async def to_final_event(stack: Stack, orders: int) -> dict[str, Any]:
    """Paced market buys, each timed from its send to its final event on the order-status
    queue: through the gateway, then by `Producer.send` directly, one order at a time at
    the same rate."""
    users = [stack.users[n % len(stack.users)] for n in range(orders)]
    url, bench = stack.gateway.url, stack.bench
    producer = Producer(bench.clients.sqs, bench.commands_url, fifo=True)
    through: list[Callable[[], Awaitable[Any]]] = [
        partial(_placed_at, partial(place_order, stack.http, url, stack.auth[u])) for u in users
    ]
    direct: list[Callable[[], Awaitable[Any]]] = [
        partial(_placed_at, partial(producer.send, c)) for c in bench.orders(users, orders)
    ]
    placed = await _until_final(bench, through)
    sent = await _until_final(bench, direct)
    return {
        "orders": orders,
        "offered_rate": PACED_RATE,
        "gateway": figures(_to_final_ms(bench, placed)),
        "producer": figures(_to_final_ms(bench, sent)),
        "order_ids": {o: users[n] for n, o in enumerate(placed)},
    }


async def _until_final(bench: Bench, calls: list[Callable[[], Awaitable[Any]]]) -> dict[str, float]:
    """Each order's send time, by order id, once every one is final."""
    _, _, answers = await timed_calls(calls, HTTP_CLIENTS, rate=PACED_RATE)
    sent = dict(answers)
    await bench.wait_final(set(sent))
    return sent


def _to_final_ms(bench: Bench, sent: dict[str, float]) -> list[float]:
    return sorted((bench.follower.final_at[o] - t) * 1000 for o, t in sent.items())


async def _placed_at(placing: Callable[[], Awaitable[str]]) -> tuple[str, float]:
    began = time.monotonic()
    return await placing(), began


def _stop_all(programs: list[Workers]) -> None:
    for program in reversed(programs):
        program.stop()


async def get_order(
    stack: Stack, owners: dict[str, str], latency: tuple[float, float], rounds: int = 3
) -> dict[str, Any]:
    """Each order read `rounds` times, by one client and by GET_CLIENTS: from this gateway
    (a first pass warms the read model: every entry in Redis), then from a second gateway
    started without REDIS_URL (DynamoDB alone, as when no cache is configured), on the
    emulator and through the latency proxy (`latency`: AWS's round trip, ms and jitter)."""
    from order_processor.faultproxy import FaultPlan, fault_proxy

    def reads(url: str) -> list[Callable[[], Awaitable[Any]]]:
        return [
            partial(read_order, stack.http, url, o, stack.auth[u])
            for _ in range(rounds)
            for o, u in owners.items()
        ]

    async def measured(gateway: GatewayProcess) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for clients in (1, GET_CLIENTS):
            cpu = process_cpu_seconds(gateway.pid)
            _, latencies, _ = await timed_calls(reads(gateway.url), clients)
            cpu_ms = (process_cpu_seconds(gateway.pid) - cpu) * 1000 / len(latencies)
            row[f"{clients}_clients"] = figures(latencies) | {"gateway_cpu_ms": round(cpu_ms, 2)}
        return row

    await timed_calls(reads(stack.gateway.url)[: len(owners)], GET_CLIENTS)  # warm
    result = {"requests": len(owners) * rounds, "redis": await measured(stack.gateway)}
    settings = stack.bench.settings.model_copy(update={"redis_url": None})
    assert settings.endpoint_url is not None
    with fault_proxy(settings.endpoint_url, FaultPlan.latency(*latency)) as proxy:
        for name, endpoint in (
            ("dynamodb", None),
            (f"dynamodb_at_{latency[0]:g}_ms", proxy.endpoint),
        ):
            bare = await asyncio.to_thread(
                start_gateway, settings.with_endpoint(endpoint) if endpoint else settings
            )
            try:
                result[name] = await measured(bare)
            finally:
                await asyncio.to_thread(bare.program.stop)
    result["dynamodb_how"] = "a second gateway started without REDIS_URL (DynamoDB alone)"
    return result


def gateway_lines(result: dict[str, Any]) -> list[str]:
    """The summary's lines of the gateway scenario."""
    lines = [
        f"The gateway (one process), market buys of {USERS} logged-in users, "
        f"{HTTP_CLIENTS} concurrent clients, no worker draining meanwhile:",
        "",
        "| path | orders/s | p50 ms | p95 ms | p99 ms | client CPU % | gateway CPU ms/order |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["post"]:
        latency = row["latency_ms"]
        lines.append(
            f"| {row['path']} | {row['orders_per_second']} | {latency['p50']} "
            f"| {latency['p95']} | {latency['p99']} | {row['client_cpu_percent']} "
            f"| {row.get('gateway_cpu_ms_per_order', '-')} |"
        )
    final = result["to_final_event"]
    lines += ["", _final_line(final), "", *_read_lines(result["get_order"]), ""]
    return [*lines, _stream_line(result["stream"])]


def _final_line(final: dict[str, Any]) -> str:
    through, direct = final["gateway"], final["producer"]
    return (
        f"Command to final event, {final['orders']} market buys at {final['offered_rate']:g}/s "
        f"(one worker x 32): through the gateway p50 {through['p50']} ms, p95 "
        f"{through['p95']} ms, p99 {through['p99']} ms; Producer.send p50 {direct['p50']} ms, "
        f"p95 {direct['p95']} ms, p99 {direct['p99']} ms"
    )


def _read_lines(reads: dict[str, Any]) -> list[str]:
    runs = [name for name in reads if name.startswith(("redis", "dynamodb")) and "how" not in name]
    columns = list(reads[runs[0]])
    lines = [
        f"`GET /v1/orders/{{id}}`, {reads['requests']} reads of final orders (DynamoDB: "
        f"{reads['dynamodb_how']}), p50 / p99 ms and the gateway's CPU ms per read:",
        "",
        "| from | "
        + " | ".join(c.replace("_", " ").replace("1 clients", "1 client") for c in columns)
        + " |",
        "|---|" + "---|" * len(columns),
    ]
    for run in runs:
        cells = [
            f"{r['p50']} / {r['p99']} ({r['gateway_cpu_ms']})"
            for r in (reads[run][c] for c in columns)
        ]
        lines.append(f"| {run.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return lines


def _stream_line(stream: dict[str, Any]) -> str:
    sse, queue = stream["latency_ms"], stream["order_status_queue_ms"]
    rss = stream.get("gateway_rss_mib", {"before": "-", "streams_open": "-"})
    return (
        f"The stream: {stream['clients']} SSE clients ({stream['clients'] // stream['users']} "
        f"per user, {stream['users']} users, opened in {stream['seconds_to_open_all']} s), one "
        f"order per user: {stream['final_events_delivered']} of "
        f"{stream['final_events_expected']} final events delivered, "
        f"{stream['streams_ended_unavailable']} streams ended `unavailable`; from the event's "
        f"`occurred_at` to the client p50 {sse['p50']} ms, p95 {sse['p95']} ms, p99 "
        f"{sse['p99']} ms (to the order-status SQS queue's follower: p50 {queue['p50']} ms, "
        f"p99 {queue['p99']} ms); over {stream['seconds']} s the clients (aiohttp, the "
        f"benchmark's process) used {stream['client_cpu_percent']} % of a core, the gateway "
        f"{stream['gateway_cpu_percent']} %; the gateway's RSS {rss['before']} MiB before the "
        f"streams, {rss['streams_open']} MiB with them open"
    )
