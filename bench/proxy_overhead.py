"""What the fault proxy costs: requests per second of a call mix straight to the emulator
and through the proxy with no faults, the same client and concurrency.

`python -m bench.proxy_overhead [--requests 4000] [--in-flight 32]` starts an emulator
(or uses AWS_ENDPOINT_URL), prints one JSON line per measured path and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import aioboto3
from botocore.config import Config

from order_processor.aws import EMULATOR_KEYS
from order_processor.deployment.emulator import running_emulator
from order_processor.faultproxy import FaultPlan, fault_proxy

TABLE = "proxy-overhead"


@contextlib.contextmanager
def emulator_endpoint() -> Iterator[str]:
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield configured
        return
    with running_emulator() as emulator:
        yield emulator.endpoint


def _client(endpoint: str, in_flight: int) -> Any:
    return aioboto3.Session().client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=EMULATOR_KEYS[0],
        aws_secret_access_key=EMULATOR_KEYS[1],
        config=Config(max_pool_connections=in_flight, retries={"total_max_attempts": 1}),
    )


async def _prepare(endpoint: str) -> None:
    async with _client(endpoint, 1) as dynamodb:
        with contextlib.suppress(Exception):
            await dynamodb.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )


async def rate(endpoint: str, requests: int, in_flight: int) -> float:
    """Requests per second of alternating PutItem / GetItem calls."""
    async with _client(endpoint, in_flight) as dynamodb:
        counter = iter(range(requests))

        async def caller() -> None:
            for n in counter:
                key = {"pk": {"S": f"k{n % 500}"}}
                if n % 2:
                    await dynamodb.get_item(TableName=TABLE, Key=key)
                else:
                    await dynamodb.put_item(TableName=TABLE, Item={**key, "v": {"N": str(n)}})

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(in_flight)))
        return requests / (time.perf_counter() - began)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    endpoint: str, proxied: str, proxy_pid: int, requests: int, in_flight: int
) -> dict[str, Any]:
    await _prepare(endpoint)
    await rate(endpoint, requests // 4, in_flight)  # warm both paths up
    await rate(proxied, requests // 4, in_flight)
    direct = await rate(endpoint, requests, in_flight)
    cpu_before = cpu_seconds(proxy_pid)
    through = await rate(proxied, requests, in_flight)
    proxy_cpu = cpu_seconds(proxy_pid) - cpu_before
    one_direct = await rate(endpoint, 400, 1)
    one_through = await rate(proxied, 400, 1)
    return {
        "in_flight": in_flight,
        "direct_rps": round(direct, 1),
        "proxied_rps": round(through, 1),
        "proxied_share": round(through / direct, 3),
        "proxy_cpu_us_per_request": round(proxy_cpu / requests * 1e6),
        "one_at_a_time_ms": {
            "direct": round(1000 / one_direct, 2),
            "proxied": round(1000 / one_through, 2),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy_overhead")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--in-flight", type=int, default=32)
    args = parser.parse_args()
    with emulator_endpoint() as endpoint, fault_proxy(endpoint, FaultPlan()) as proxy:
        result = asyncio.run(
            measure(endpoint, proxy.endpoint, proxy.pid, args.requests, args.in_flight)
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
