"""The measurements: throughput and latency, calls per command, CPU and memory, growth."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bench.workload import Bench, bench_deployment, seed_users, start_workers
from order_processor.domain.commands import AnyCommand
from order_processor.domain.orders import OrderCreate, OrderType
from order_processor.messaging.producer import CommandFactory

RICH = Decimal("100000000.00")
CALL_LINE = re.compile(r'aws_calls_total\{operation="(\w+)",service="(\w+)"\} ([\d.e+]+)')
REQUEST_LINE = re.compile(r'aws_requests_total\{operation="(\w+)",service="(\w+)"\} ([\d.e+]+)')
PROCESSED_LINE = re.compile(r'commands_processed_total\{type="(\w+)"\} ([\d.e+]+)')


def users_for(distribution: str, count: int = 1000) -> list[str]:
    return (
        ["hot_user_0001"]
        if distribution == "hot"
        else [f"bench_user_{n:04d}" for n in range(count)]
    )


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))] if values else 0.0


def aws_calls(metrics_texts: list[str]) -> Counter[str]:
    calls: Counter[str] = Counter()
    for text in metrics_texts:
        for operation, service, value in CALL_LINE.findall(text):
            calls[f"{service}.{operation}"] += int(float(value))
    return calls


def aws_requests(metrics_texts: list[str]) -> int:
    """HTTP requests to AWS, botocore's retries included."""
    return sum(int(float(v)) for text in metrics_texts for *_, v in REQUEST_LINE.findall(text))


def processed(metrics_texts: list[str]) -> int:
    return sum(int(float(v)) for text in metrics_texts for _, v in PROCESSED_LINE.findall(text))


async def throughput_and_latency(
    endpoint: str,
    *,
    workers: int,
    in_flight: int,
    distribution: str,
    backlog: int,
    paced: int,
    worker_endpoint: str | None = None,
    offered_rate: float | None = None,
) -> dict[str, Any]:
    """A backlog drained (throughput), then a paced load at 60 % of it or `offered_rate`
    (latency from send to final event, and the AWS calls and HTTP requests per order). `worker_endpoint`: the
    workers reach AWS through it (a fault proxy), the load and the follower directly."""
    async with bench_deployment(endpoint) as bench:
        users = users_for(distribution)
        await seed_users(bench.clients, users, RICH)
        settings = bench.settings
        if worker_endpoint is not None:
            settings = settings.model_copy(update={"endpoint_url": worker_endpoint})
        pool = await asyncio.to_thread(start_workers, settings, workers, in_flight)
        try:
            started = time.monotonic()
            sent = await bench.send(list(bench.orders(users, backlog)))
            finished = await bench.wait_final(set(sent))
            rate = backlog / (finished - started)
            offered = offered_rate or rate * 0.6
            texts = await asyncio.to_thread(pool.metrics)
            before, requests_before = aws_calls(texts), aws_requests(texts)
            paced_sent = await bench.send(list(bench.orders(users, paced)), rate=offered)
            await bench.wait_final(set(paced_sent))
            texts = await asyncio.to_thread(pool.metrics)
            after, requests_after = aws_calls(texts), aws_requests(texts)
        finally:
            await asyncio.to_thread(pool.stop)
        latencies = sorted((bench.follower.final_at[o] - t) * 1000 for o, t in paced_sent.items())
    return {
        "workers": workers,
        "in_flight": in_flight,
        "distribution": distribution,
        "orders_per_second": round(rate, 1),
        "latency_ms": {
            "offered_rate": round(offered, 1),
            "p50": round(percentile(latencies, 0.5), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "p99": round(percentile(latencies, 0.99), 1),
        },
        "calls_per_order": {
            k: round((after[k] - before[k]) / paced, 2)
            for k in sorted(after)
            if after[k] - before[k]
        },
        "requests_per_order": round((requests_after - requests_before) / paced, 2),
    }


def command_mix(bench: Bench, kind: str, users: list[str], count: int) -> list[AnyCommand]:
    factory = CommandFactory(bench.tokens)
    pick = [users[n % len(users)] for n in range(count)]
    if kind in {"MARKET_BUY", "MARKET_SELL", "LIMIT_BUY"}:
        order_type = OrderType(kind)
        limit = Decimal("5") if kind == "LIMIT_BUY" else None
        return [
            factory.place_order(
                u,
                OrderCreate(
                    order_type=order_type, asset_id="COIN", quantity=Decimal("1"), limit_price=limit
                ),
            )
            for u in pick
        ]
    if kind == "Deposit":
        return [factory.deposit(u, "10") for u in pick]
    return [factory.withdraw(u, "10") for u in pick]


async def calls_per_command(endpoint: str, count: int) -> dict[str, dict[str, float]]:
    """Each command type alone, through one worker: API calls per command, by operation."""
    result: dict[str, dict[str, float]] = {}
    async with bench_deployment(endpoint) as bench:
        users = users_for("spread", 100)
        await seed_users(bench.clients, users, RICH)
        pool = await asyncio.to_thread(start_workers, bench.settings, 1, 32)
        try:
            for kind in ("MARKET_BUY", "MARKET_SELL", "LIMIT_BUY", "Deposit", "Withdraw"):
                before_texts = await asyncio.to_thread(pool.metrics)
                before, done = aws_calls(before_texts), processed(before_texts)
                await bench.send(command_mix(bench, kind, users, count))
                while processed(await asyncio.to_thread(pool.metrics)) < done + count:
                    await asyncio.sleep(0.2)
                after = aws_calls(await asyncio.to_thread(pool.metrics))
                result[kind] = {
                    k: round((after[k] - before[k]) / count, 2)
                    for k in sorted(after)
                    if after[k] - before[k]
                }
        finally:
            await asyncio.to_thread(pool.stop)
    return result


def _cpu_and_rss(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return ticks / 100.0, rss  # seconds (USER_HZ is 100 on Linux), KiB


async def cpu_and_memory(endpoint: str, orders: int) -> dict[str, Any]:
    async with bench_deployment(endpoint) as bench:
        users = users_for("spread")
        await seed_users(bench.clients, users, RICH)
        pool = await asyncio.to_thread(start_workers, bench.settings, 1, 32)
        pid = pool.processes[0].pid
        try:
            cpu_start, rss_start = _cpu_and_rss(pid)
            commands = bench.orders(users, orders)
            sending = asyncio.create_task(bench.send(list(commands)))
            samples: list[tuple[int, int]] = []
            peak = rss_start
            while len(bench.follower.final_at) < orders:
                await asyncio.sleep(0.5)
                _, rss = _cpu_and_rss(pid)
                peak = max(peak, rss)
                samples.append((len(bench.follower.final_at), rss))
            await sending
            cpu_end, rss_end = _cpu_and_rss(pid)
        finally:
            await asyncio.to_thread(pool.stop)
    quartiles = {
        f"{q}%": next((r for done, r in samples if done >= orders * q / 100), rss_end)
        for q in (25, 50, 75, 100)
    }
    return {
        "orders": orders,
        "cpu_ms_per_order": round((cpu_end - cpu_start) * 1000 / orders, 2),
        "rss_kib_at_start": rss_start,
        "rss_kib_peak": peak,
        "rss_kib_by_progress": quartiles,
    }


async def growth(endpoint: str, *, orders: int, stored: int, waiting: int) -> dict[str, Any]:
    """Throughput of the same load on an empty table vs `stored` orders already there,
    and with an empty queue vs `waiting` messages ahead of it."""

    async def run(stored_orders: int, ahead: int) -> float:
        async with bench_deployment(endpoint) as bench:
            users = users_for("spread")
            await seed_users(bench.clients, users, RICH)
            await _store_orders(bench, stored_orders)
            ahead_sent = await bench.send(list(bench.orders(users, ahead)))
            pool = await asyncio.to_thread(start_workers, bench.settings, 1, 32)
            try:
                started = time.monotonic()
                sent = await bench.send(list(bench.orders(users, orders)))
                finished = await bench.wait_final(set(sent) | set(ahead_sent))
            finally:
                await asyncio.to_thread(pool.stop)
            return (orders + ahead) / (finished - started)

    return {
        "orders_measured": orders,
        "stored": {"none": round(await run(0, 0), 1), str(stored): round(await run(stored, 0), 1)},
        "waiting": {
            "none": round(await run(0, 0), 1),
            str(waiting): round(await run(0, waiting), 1),
        },
    }


async def _store_orders(bench: Bench, count: int) -> None:
    from order_processor.domain.orders import Order, OrderStatus
    from order_processor.store.items import order_item

    table = bench.clients.resources.orders_table
    request = OrderCreate(order_type=OrderType.MARKET_BUY, asset_id="COIN", quantity=Decimal("1"))
    for start in range(0, count, 25):
        items = [
            order_item(
                Order.place(f"old_user_{(start + n) % 997:04d}", request).evolve(
                    status=OrderStatus.COMPLETED
                )
            )
            for n in range(min(25, count - start))
        ]
        pending = {table: [{"PutRequest": {"Item": i}} for i in items]}
        while pending:
            response = await bench.clients.dynamodb.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}


async def drain_rate(endpoint: str, *, workers: int, in_flight: int, orders: int) -> float:
    """Orders per second of `workers` draining a backlog of market buys (1,000 users),
    timed from the moment they are ready to the last one processed (counted by their
    metrics): nothing else runs meanwhile, as for the ceiling."""
    async with bench_deployment(endpoint, follow=False) as bench:
        users = users_for("spread")
        await seed_users(bench.clients, users, RICH)
        await bench.send(list(bench.orders(users, orders)))
        pool = await asyncio.to_thread(start_workers, bench.settings, workers, in_flight)
        try:
            await asyncio.to_thread(pool.wait_ready)
            started = time.monotonic()
            while processed(await asyncio.to_thread(pool.metrics)) < orders:
                await asyncio.sleep(0.1)
            elapsed = time.monotonic() - started
        finally:
            await asyncio.to_thread(pool.stop)
    return orders / elapsed


async def at_latency(
    endpoint: str,
    *,
    delay_ms: float,
    jitter_ms: float,
    orders: int,
    baseline_orders: int,
    rounds: int = 3,
) -> dict[str, Any]:
    """Side by side through one latency proxy: our worker, the hand-written baseline, the
    ceiling of our call mix and the ceiling of today's (v1) call mix.

    On a small machine the worker, the proxy and the emulator share the cores, so one
    drain varies by ±10 %: ours and the same-mix ceiling are measured in alternating
    rounds and compared by their medians (every round is kept in the record)."""
    from bench.baseline import baseline
    from bench.ceiling import V1_MIX, V1_TRANSACTION_SIZES, ceiling, replayed_ceiling
    from order_processor.faultproxy import FaultPlan, fault_proxy

    runs = {f"{w} worker(s) x {f}": (w, f) for w, f in ((1, 64), (2, 64))}
    measured: dict[str, list[float]] = {name: [] for name in [*runs, "same_mix_ceiling"]}
    client_cpu: list[float] = []
    with fault_proxy(endpoint, FaultPlan.latency(delay_ms, jitter_ms)) as proxy:
        proxied = proxy.endpoint
        for _ in range(rounds):
            for name, (w, f) in runs.items():
                rate = await drain_rate(proxied, workers=w, in_flight=f, orders=orders)
                measured[name].append(round(rate, 1))
            same_mix = await replayed_ceiling(proxied, orders)
            measured["same_mix_ceiling"].append(same_mix["orders_per_second"])
            client_cpu.append(same_mix["client_cpu_ms_per_order"])
        mix = (await calls_per_command(proxied, 50))["MARKET_BUY"]
        v1_mix = await ceiling(proxied, V1_MIX, orders, transaction_sizes=V1_TRANSACTION_SIZES)
        hand_written = await baseline(proxied, baseline_orders)
    ours = {name: statistics.median(measured[name]) for name in runs}
    against = {
        "baseline": hand_written["orders_per_second"],
        "same_mix_ceiling": statistics.median(measured["same_mix_ceiling"]),
        "v1_mix_ceiling": v1_mix["orders_per_second"],
    }
    return {
        "delay_ms": delay_ms,
        "jitter_ms": jitter_ms,
        "orders": orders,
        "rounds": measured,
        "same_mix_ceiling_client_cpu_ms_per_order": statistics.median(client_cpu),
        "ours_orders_per_second": ours,
        "our_call_mix": mix,
        **against,
        # One worker process against the single-process ceilings and baseline; each row
        # of ours against each of them.
        "ratios": {
            run: {f"ours_vs_{name}": round(rate / other, 2) for name, other in against.items()}
            for run, rate in ours.items()
        },
    }


async def under_faults(
    endpoint: str,
    *,
    plans: dict[str, str],
    latency_ms: float,
    jitter_ms: float,
    backlog: int,
    paced: int,
    in_flight: int = 32,
) -> dict[str, Any]:
    """The same run (one worker, market orders of 1,000 users: a backlog drained, then a
    paced load) through the fault proxy at AWS's latency, without faults and then with
    each plan's. The paced load is offered at 60 % of the run without faults in every run,
    so that latencies compare at one load. Throughput and p99 as ratios of the run without
    faults (p99: without / with, so that 1 is as good), and the API calls and HTTP
    requests each order costs."""
    from order_processor.faultproxy import FaultPlan, fault_proxy

    rows: dict[str, dict[str, Any]] = {}
    offered: float | None = None
    for name, text in {"without_faults": "", **plans}.items():
        plan = replace(FaultPlan.parse(text), latency_ms=latency_ms, jitter_ms=jitter_ms)
        with fault_proxy(endpoint, plan, seed=1) as proxy:
            row = await throughput_and_latency(
                endpoint,
                workers=1,
                in_flight=in_flight,
                distribution="spread",
                backlog=backlog,
                paced=paced,
                worker_endpoint=proxy.endpoint,
                offered_rate=offered,
            )
            row["plan"] = plan.text()
            row["faults_injected"] = {
                kind: sum(by_operation.values())
                for kind, by_operation in sorted(proxy.stats().faults.items())
            }
        offered = offered or row["orders_per_second"] * 0.6
        rows[name] = row
    clean = rows["without_faults"]
    return {
        **rows,
        "ratios": {name: _against(rows[name], clean) for name in rows if name != "without_faults"},
    }


def _against(faulty: dict[str, Any], clean: dict[str, Any]) -> dict[str, float]:
    return {
        "throughput": round(faulty["orders_per_second"] / clean["orders_per_second"], 2),
        "p99": round(clean["latency_ms"]["p99"] / max(faulty["latency_ms"]["p99"], 0.1), 2),
        "extra_calls_per_order": round(
            sum(faulty["calls_per_order"].values()) - sum(clean["calls_per_order"].values()), 2
        ),
        "extra_requests_per_order": round(
            faulty["requests_per_order"] - clean["requests_per_order"], 2
        ),
    }
