"""The gateway's side of the benchmark: its programs (redis-server, the cache worker, the
gateway, an order worker) as processes, customers with passwords, their sessions, and the
HTTP calls the clients make (aiohttp, in the benchmark's process)."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt

from bench.scenarios import percentile
from bench.workload import Bench, Workers
from order_processor.config import Settings
from order_processor.deployment.emulator import free_port

PASSWORD = "Bench-pass-1!"  # noqa: S105 - the benchmark's own users
# Every client of the benchmark comes from 127.0.0.1: the per-address and per-user limits
# (requests and open streams) would measure the limiter, not the gateway.
UNLIMITED = {
    "gateway_rate_per_user": 100_000.0,
    "gateway_burst_per_user": 100_000,
    "gateway_rate_per_address": 100_000.0,
    "gateway_burst_per_address": 100_000,
    "gateway_streams_per_user": 10_000,
    "gateway_streams_per_address": 100_000,
}
ORDER = {"order_type": "MARKET_BUY", "asset_id": "COIN", "quantity": "1"}
LOGS = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
HTTP_CLIENTS = 32
PACED_RATE = 20.0  # orders a second: well inside one worker's throughput


def figures(latencies: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(latencies, q / 100), 1) for q in (50, 95, 99)}


@dataclass
class Stack:
    """A deployment with its Redis, cache worker, order worker and gateway running."""

    bench: Bench
    gateway: GatewayProcess
    users: list[str]
    auth: dict[str, str]
    http: aiohttp.ClientSession


def password_hash() -> str:
    """bcrypt at its lowest cost: logging in is not what is measured."""
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def start_program(settings: Settings, module: str, *arguments: str) -> Workers:
    """`python -m module` with the settings (metrics on a free port), ready (/readyz 200);
    its output in LOGS."""
    port = free_port()
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ORDER_PROCESSOR_") and k != "REDIS_URL"
    }
    environment = inherited | settings.to_env()
    environment["ORDER_PROCESSOR_METRICS_PORT"] = str(port)
    log = LOGS / f"{module.removeprefix('workers.')}-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *arguments],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    program = Workers([process], [port])
    try:
        program.wait_ready()
    except OSError:
        program.stop()
        raise
    return program


@dataclass(frozen=True)
class GatewayProcess:
    """One gateway process and where it listens."""

    program: Workers
    url: str

    @property
    def pid(self) -> int:
        return self.program.processes[0].pid


def start_gateway(settings: Settings) -> GatewayProcess:
    port = free_port()
    gateway_settings = settings.overridden({**UNLIMITED, "gateway_port": port})
    program = start_program(gateway_settings, "workers.gateway")
    return GatewayProcess(program, f"http://127.0.0.1:{port}")


def http_session(connections: int = 0) -> aiohttp.ClientSession:
    """`connections` 0: as many as the clients open (1,000 streams). An idle connection is
    dropped before the gateway's keep-alive (5 s) ends it: a request sent on a connection
    the server is closing meets a reset."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=3.0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )


async def log_in(http: aiohttp.ClientSession, url: str, usernames: Iterable[str]) -> dict[str, str]:
    """Each user's `Authorization` header."""
    headers: dict[str, str] = {}
    for username in usernames:
        body = {"username": username, "password": PASSWORD}
        async with http.post(f"{url}/v1/sessions", json=body) as answer:
            if answer.status != 200:
                raise RuntimeError(f"login of {username}: {answer.status} {await answer.text()}")
            headers[username] = f"Bearer {(await answer.json())['access_token']}"
    return headers


async def place_order(http: aiohttp.ClientSession, url: str, authorization: str) -> str:
    """POST /v1/orders with a fresh Idempotency-Key; the order id."""
    headers = {"Authorization": authorization, "Idempotency-Key": uuid.uuid4().hex}
    async with http.post(f"{url}/v1/orders", json=ORDER, headers=headers) as answer:
        if answer.status != 202:
            raise RuntimeError(f"POST /v1/orders: {answer.status} {await answer.text()}")
        order_id: str = (await answer.json())["order_id"]
        return order_id


async def read_order(http: aiohttp.ClientSession, url: str, order_id: str, auth: str) -> None:
    async with http.get(f"{url}/v1/orders/{order_id}", headers={"Authorization": auth}) as answer:
        if answer.status != 200:
            raise RuntimeError(f"GET /v1/orders/{order_id}: {answer.status}")
        await answer.read()


async def timed_calls(
    calls: Sequence[Callable[[], Awaitable[Any]]], clients: int, rate: float | None = None
) -> tuple[float, list[float], list[Any]]:
    """The calls made by `clients` concurrent clients (each takes the next call when it is
    done; at `rate` a second if given): the seconds they took, each one's milliseconds
    (sorted), and their answers in order."""
    answers: list[Any] = [None] * len(calls)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(len(calls)):
        queue.put_nowait(n)
    started = time.monotonic()

    async def client() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            if rate is not None:
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            began = time.monotonic()
            answers[n] = await calls[n]()
            latencies.append((time.monotonic() - began) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    return time.monotonic() - started, sorted(latencies), answers


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # USER_HZ is 100 on Linux


def process_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return round(kib / 1024, 1)
