"""`make bench` (`python -m bench.run [--full] [--only NAME ...]`): every measurement of
the benchmark issue, on a fresh embedded emulator; results with the machine and the
command in bench/results/<time>.json, a summary in bench/results/latest.md and a chart
in bench/results/in_flight.png."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.analytics import drain
from bench.baseline import baseline
from bench.ceiling import replayed_ceiling
from bench.conversions import conversion_against_market
from bench.gateway import gateway_scenario
from bench.machine import describe_machine
from bench.mixed import mixed
from bench.report import chart, summary
from bench.scenarios import (
    at_latency,
    calls_per_command,
    cpu_and_memory,
    growth,
    throughput_and_latency,
    under_faults,
)
from bench.stops import CASES as STOP_CASES
from bench.stops import EMPTY_BOOK, QUIET_BOOK, one_move
from order_processor.demo.load import DemoPlan
from order_processor.deployment.emulator import running_emulator
from order_processor.faultproxy import AWS_BAD_DAY

RESULTS = Path(__file__).resolve().parent / "results"
LATENCY_MS, JITTER_MS = 8.0, 2.0  # a round trip to DynamoDB, SQS or SNS in one region
CONVERSIONS_RATE = 30.0  # commands a second: well below one worker's throughput
MEASUREMENTS = (
    "mixed",
    "throughput",
    "calls",
    "conversions",
    "ceiling",
    "baseline",
    "latency",
    "cpu",
    "growth",
    "stops",
    "analytics",
    "faults",
    "gateway",
)


@dataclass(frozen=True)
class Sizes:
    backlog: int
    paced: int
    calls: int
    conversions: int
    ceiling: int
    baseline: int
    cpu: int
    growth_orders: int
    stored: int
    waiting: int
    latency: int
    latency_baseline: int
    stops: tuple[int, ...]
    stops_at_latency: tuple[int, ...]
    analytics: int
    faults_backlog: int
    faults_paced: int
    mixed: DemoPlan
    gateway_orders: int
    streams: int


QUICK = Sizes(
    backlog=200,
    paced=100,
    calls=50,
    conversions=300,
    ceiling=1500,
    baseline=200,
    cpu=2000,
    growth_orders=300,
    stored=20_000,
    waiting=2_000,
    latency=1000,
    latency_baseline=100,
    stops=(1000, 10_000),
    stops_at_latency=(1000,),
    analytics=2000,
    faults_backlog=1000,
    faults_paced=500,
    mixed=DemoPlan(),  # the demo's own size and rate: 600 commands over 40 s
    gateway_orders=1000,
    streams=1000,
)
FULL = Sizes(
    backlog=1000,
    paced=300,
    calls=200,
    conversions=1000,
    ceiling=5000,
    baseline=1000,
    cpu=10_000,
    growth_orders=1000,
    stored=100_000,
    waiting=5_000,
    latency=3000,
    latency_baseline=300,
    stops=(1000, 10_000),
    stops_at_latency=(1000,),
    analytics=10_000,
    faults_backlog=3000,
    faults_paced=1500,
    mixed=DemoPlan(orders=1800, seconds=120.0),  # the same rate, three times as long
    gateway_orders=3000,
    streams=1000,
)


async def measure(endpoint: str, sizes: Sizes, only: set[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "mixed" in only:
        results["mixed"] = await mixed(endpoint, sizes.mixed)
        print(json.dumps(results["mixed"]), flush=True)
    if "throughput" in only:
        results["throughput"] = []
        for distribution in ("spread", "hot"):
            for workers in (1, 2):
                for in_flight in (1, 8, 32, 64):
                    row = await throughput_and_latency(
                        endpoint,
                        workers=workers,
                        in_flight=in_flight,
                        distribution=distribution,
                        backlog=sizes.backlog,
                        paced=sizes.paced,
                    )
                    print(json.dumps(row), flush=True)
                    results["throughput"].append(row)
    if "calls" in only:
        results["calls_per_command"] = await calls_per_command(endpoint, sizes.calls)
        print(json.dumps(results["calls_per_command"]), flush=True)
    if "conversions" in only:
        results["conversions"] = await conversions(endpoint, sizes.conversions)
        print(json.dumps(results["conversions"]), flush=True)
    if "ceiling" in only:
        results["ceiling"] = await replayed_ceiling(endpoint, sizes.ceiling)
        print(json.dumps(results["ceiling"]), flush=True)
    if "baseline" in only:
        results["baseline"] = await baseline(endpoint, sizes.baseline)
        print(json.dumps(results["baseline"]), flush=True)
    if "latency" in only:
        results["latency"] = await at_latency(
            endpoint,
            delay_ms=LATENCY_MS,
            jitter_ms=JITTER_MS,
            orders=sizes.latency,
            baseline_orders=sizes.latency_baseline,
        )
        print(json.dumps(results["latency"]), flush=True)
    if "cpu" in only:
        results["cpu_and_memory"] = await cpu_and_memory(endpoint, sizes.cpu)
        print(json.dumps(results["cpu_and_memory"]), flush=True)
    if "growth" in only:
        results["growth"] = await growth(
            endpoint, orders=sizes.growth_orders, stored=sizes.stored, waiting=sizes.waiting
        )
        print(json.dumps(results["growth"]), flush=True)
    if "stops" in only:
        idle = [await one_move(endpoint, EMPTY_BOOK, 0)]
        idle += [await one_move(endpoint, QUIET_BOOK, count) for count in sizes.stops[:1]]
        results["stop_triggers"] = idle
        for row in idle:
            print(json.dumps(row), flush=True)
        for count in sizes.stops:
            for case in STOP_CASES:
                row = await one_move(endpoint, case, count)
                print(json.dumps(row), flush=True)
                results["stop_triggers"].append(row)
        if sizes.stops_at_latency:
            from order_processor.faultproxy import FaultPlan, fault_proxy

            with fault_proxy(endpoint, FaultPlan.latency(LATENCY_MS, JITTER_MS)) as proxy:
                proxied = proxy.endpoint
                for count in sizes.stops_at_latency:
                    for case in STOP_CASES:
                        row = await one_move(
                            endpoint,
                            case,
                            count,
                            matcher_endpoint=proxied,
                            latency_ms=LATENCY_MS,
                        )
                        print(json.dumps(row), flush=True)
                        results["stop_triggers"].append(row)
    if "analytics" in only:
        results["analytics"] = await drain(endpoint, sizes.analytics)
        print(json.dumps(results["analytics"]), flush=True)
    if "faults" in only:
        results["faults"] = await under_faults(
            endpoint,
            plans={"throttling_5_percent": "throttle=0.05", "aws_bad_day": AWS_BAD_DAY},
            latency_ms=LATENCY_MS,
            jitter_ms=JITTER_MS,
            backlog=sizes.faults_backlog,
            paced=sizes.faults_paced,
        )
        print(json.dumps(results["faults"]), flush=True)
    if "gateway" in only:
        results["gateway"] = await gateway_scenario(
            endpoint,
            orders=sizes.gateway_orders,
            streams=sizes.streams,
            latency=(LATENCY_MS, JITTER_MS),
        )
        print(json.dumps(results["gateway"]), flush=True)
    return results


async def conversions(endpoint: str, count: int) -> dict[str, Any]:
    """A conversion next to a market order, on the emulator and at AWS's latency."""
    from order_processor.faultproxy import FaultPlan, fault_proxy

    direct = await conversion_against_market(endpoint, count=count, rate=CONVERSIONS_RATE)
    with fault_proxy(endpoint, FaultPlan.latency(LATENCY_MS, JITTER_MS)) as proxy:
        at_latency = await conversion_against_market(
            endpoint, count=count, rate=CONVERSIONS_RATE, worker_endpoint=proxy.endpoint
        )
    return {"direct": direct, f"at_{LATENCY_MS:g}_ms": at_latency}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument(
        "--full",
        action="store_true",
        help="the bigger sizes (10,000-order CPU run, 100,000 stored)",
    )
    parser.add_argument("--only", nargs="*", choices=MEASUREMENTS, default=list(MEASUREMENTS))
    parser.add_argument("--cpu-orders", type=int, help="orders of the CPU and memory run")
    parser.add_argument(
        "--stops", type=int, nargs="+", help="waiting stops per price move (default 1000 10000)"
    )
    parser.add_argument(
        "--stops-at-latency",
        type=int,
        nargs="*",
        help="the same through the latency proxy (default 1000; none: skip)",
    )
    args = parser.parse_args()
    sizes = FULL if args.full else QUICK
    if args.cpu_orders:
        sizes = Sizes(**{**sizes.__dict__, "cpu": args.cpu_orders})
    if args.stops:
        sizes = Sizes(**{**sizes.__dict__, "stops": tuple(args.stops)})
    if args.stops_at_latency is not None:
        sizes = Sizes(**{**sizes.__dict__, "stops_at_latency": tuple(args.stops_at_latency)})
    started = time.time()
    with running_emulator() as emulator:
        results = asyncio.run(measure(emulator.endpoint, sizes, set(args.only)))
    record = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": describe_machine(),
        "sizes": asdict(sizes),
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    (RESULTS / f"{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")
    text = summary(record)
    complete = set(args.only) == set(MEASUREMENTS)
    (RESULTS / ("latest.md" if complete else f"{stamp}.md")).write_text(text)
    if "throughput" in results:
        chart(results["throughput"], RESULTS / "in_flight.png")
    print(text)
    written = [f"{stamp}.json", "latest.md" if complete else f"{stamp}.md"]
    written += ["in_flight.png"] if "throughput" in results else []
    print("written in bench/results: " + ", ".join(written))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
