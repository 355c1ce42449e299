"""A conversion next to a market order (`--only conversions`): what each costs in AWS
calls and how long a client waits for its answer.

One order worker (32 in flight, as deployed), 100 users with USD, the EUR rate written
straight to the rates partition (setup, not measured). Then, for each kind in turn, the
same number of commands offered at the same paced rate: market buys (answered by their
final event) and conversions of 100 USD into EUR (answered by `balance.converted`). The
calls are the worker's own count (`aws_calls_total`, botocore's event hooks, as for
`calls`) before and after each kind, and its HTTP requests with botocore's retries;
latency is from the send to the answering event on the status queue. Run once against
the emulator and once with the worker's requests held by the latency proxy (8 ms ± 2 ms,
an AWS round trip in one region), the load and the follower reaching the emulator directly.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from bench.scenarios import RICH, aws_calls, aws_requests, percentile, processed, users_for
from bench.workload import Bench, bench_deployment, seed_users, start_workers
from order_processor.bootstrap.clients import get_rate_store
from order_processor.domain.base import new_id, utc_now
from order_processor.domain.commands import AnyCommand
from order_processor.messaging.producer import CommandFactory

EUR_RATE = Decimal("1.0850")
CONVERTED_USD = "100.00"
KINDS = ("market buy", "conversion")


def conversions(bench: Bench, users: list[str], count: int) -> list[AnyCommand]:
    factory = CommandFactory(bench.tokens)
    token = {u: bench.tokens.create_access_token(u) for u in users}
    return [
        factory.convert(u, CONVERTED_USD, "USD", "EUR", token=token[u])
        for u in (users[n % len(users)] for n in range(count))
    ]


async def conversion_against_market(
    endpoint: str,
    *,
    count: int,
    rate: float,
    worker_endpoint: str | None = None,
) -> dict[str, Any]:
    """Per kind: AWS calls per command (total and by operation), HTTP requests per
    command, and latency p50/p95/p99 at `rate` commands a second. `worker_endpoint`: the
    worker reaches AWS through it (the latency proxy)."""
    async with bench_deployment(endpoint) as bench:
        users = users_for("spread", 100)
        await seed_users(bench.clients, users, RICH)
        await get_rate_store(bench.clients, bench.settings).change_rate(
            "EUR", EUR_RATE, as_of=utc_now(), command_id=new_id()
        )
        settings = bench.settings
        if worker_endpoint is not None:
            settings = settings.model_copy(update={"endpoint_url": worker_endpoint})
        pool = await asyncio.to_thread(start_workers, settings, 1, 32)
        rows: dict[str, Any] = {}
        try:
            for kind in KINDS:
                commands: list[AnyCommand] = (
                    list(bench.orders(users, count))
                    if kind == "market buy"
                    else conversions(bench, users, count)
                )
                rows[kind] = await _measure(bench, pool, commands, rate)
        finally:
            await asyncio.to_thread(pool.stop)
    return {"commands": count, "offered_rate": rate, **rows}


async def _measure(
    bench: Bench, pool: Any, commands: list[AnyCommand], rate: float
) -> dict[str, Any]:
    texts = await asyncio.to_thread(pool.metrics)
    calls, requests, done = aws_calls(texts), aws_requests(texts), processed(texts)
    sent = await bench.send(commands, rate=rate)
    await bench.wait_final(set(sent))
    while processed(texts := await asyncio.to_thread(pool.metrics)) < done + len(commands):
        await asyncio.sleep(0.1)  # the worker counts a command once its message is deleted
    after = aws_calls(texts)
    count = len(commands)
    by_operation = {
        k: round((after[k] - calls[k]) / count, 2) for k in sorted(after) if after[k] - calls[k]
    }
    latencies = sorted((bench.follower.final_at[c] - t) * 1000 for c, t in sent.items())
    return {
        "rejected": len(bench.follower.rejected & sent.keys()),
        "calls_per_command": round(sum(after[k] - calls[k] for k in after) / count, 2),
        "calls_by_operation": by_operation,
        "requests_per_command": round((aws_requests(texts) - requests) / count, 2),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "p99": round(percentile(latencies, 0.99), 1),
        },
    }
