"""The mixed scenario: the demo's trading day (`make run`'s load: market, limit, stop,
take-profit and trailing orders, cancels, deposits, withdrawals and conversions in several
currencies at a fixed rate, prices and rates moving, two order workers, the limit matcher,
the expiry sweeper and the analytics worker as separate processes) with each command
kind's latency from its send to the event that answers it (see
`order_processor.demo.tally`): the figure a trader feels."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.workload import bench_settings, provision
from order_processor.bootstrap import open_clients
from order_processor.demo.load import Demo, DemoPlan
from order_processor.demo.run import trading_day

MARKET_P95_TARGET_MS, MARKET_P99_TARGET_MS = 300.0, 500.0


async def mixed(endpoint: str, plan: DemoPlan) -> dict[str, Any]:
    settings = bench_settings(endpoint)
    provision(settings)
    async with open_clients(settings) as clients:
        demo = Demo(settings, plan, clients)
        try:
            day = await trading_day(demo, clients, time.monotonic())
        finally:
            demo.stopping.set()
            await asyncio.to_thread(demo.programs.stop)
    tally = demo.tally
    latency = tally.report()
    market = latency.get("market order", {})
    return {
        "users": plan.users,
        "commands": plan.orders,
        "seconds": plan.seconds,
        "rate": round(plan.orders / plan.seconds, 1),
        "all_final": day.final,
        "rejected": dict(sorted(tally.rejected.items())),
        "latency_ms": latency,
        "market_target": {
            "p95": MARKET_P95_TARGET_MS,
            "p99": MARKET_P99_TARGET_MS,
            "met": bool(market)
            and market["p95"] <= MARKET_P95_TARGET_MS
            and market["p99"] <= MARKET_P99_TARGET_MS,
        },
    }
