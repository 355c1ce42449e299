"""The stream's part of the gateway scenario: 1,000 `GET /v1/stream` clients (aiohttp, in
the benchmark's process) and each final event's delivery to every stream of its user."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import aiohttp

from bench.gateway_programs import (
    HTTP_CLIENTS,
    PACED_RATE,
    Stack,
    figures,
    own_cpu_seconds,
    place_order,
    process_cpu_seconds,
    process_rss_mib,
    timed_calls,
)
from bench.workload import TERMINAL


@dataclass
class StreamClient:
    """One open `GET /v1/stream`: when each final event arrived (wall clock, by order id)."""

    username: str
    final_at: dict[str, tuple[float, float]] = field(default_factory=dict)  # (occurred, seen)
    opened: bool = False
    ended_early: bool = False

    async def listen(self, http: aiohttp.ClientSession, url: str, auth: str) -> None:
        answer = await http.get(f"{url}/v1/stream", headers={"Authorization": auth})
        if answer.status != 200:
            raise RuntimeError(f"GET /v1/stream: {answer.status} {await answer.text()}")
        event_type = ""
        async for raw in answer.content:
            if raw.startswith(b"retry:"):  # the stream's first line: it is open
                break
        self.opened = True
        async with answer:
            async for raw in answer.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event_type = line[7:]
                    self.ended_early |= event_type == "unavailable"
                elif line.startswith("data: ") and event_type in TERMINAL:
                    seen = time.time()
                    event = json.loads(line[6:])
                    occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
                    self.final_at.setdefault(event["order_id"], (occurred, seen))


async def stream_delivery(stack: Stack, clients: int, seconds: float = 120) -> dict[str, Any]:
    """`clients` streams spread over the users (one order each, paced through the gateway):
    each final event's delivery to every stream of its user, from the event's `occurred_at`
    (the commit, the worker's clock on this machine), against its arrival on the
    order-status queue (an SQS subscription of the same topic)."""
    rss_before = process_rss_mib(stack.gateway.pid)
    listeners = [StreamClient(stack.users[n % len(stack.users)]) for n in range(clients)]
    url = stack.gateway.url
    tasks = [
        asyncio.create_task(c.listen(stack.http, url, stack.auth[c.username])) for c in listeners
    ]
    started = time.monotonic()
    while not all(c.opened for c in listeners):
        for failed in (t for t in tasks if t.done()):
            failed.result()  # raises what stopped it
        if time.monotonic() - started > seconds:
            raise TimeoutError(f"{sum(c.opened for c in listeners)} streams open of {clients}")
        await asyncio.sleep(0.05)
    opened_in = time.monotonic() - started
    cpu, gateway_cpu, began = own_cpu_seconds(), process_cpu_seconds(stack.gateway.pid), time.time()
    offset = time.time() - time.monotonic()
    placing = [partial(place_order, stack.http, url, stack.auth[u]) for u in stack.users]
    _, _, order_ids = await timed_calls(placing, HTTP_CLIENTS, rate=PACED_RATE)
    owner = dict(zip(order_ids, stack.users, strict=True))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(
        not c.final_at and not t.done() for c, t in zip(listeners, tasks, strict=True)
    ):
        await asyncio.sleep(0.1)
    elapsed = time.time() - began
    rss_open = process_rss_mib(stack.gateway.pid)
    client_cpu = own_cpu_seconds() - cpu
    gateway_cpu = process_cpu_seconds(stack.gateway.pid) - gateway_cpu
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delivered = sorted(
        (seen - occurred) * 1000
        for c in listeners
        for order_id, (occurred, seen) in c.final_at.items()
        if owner.get(order_id) == c.username
    )
    follower = stack.bench.follower.final_at
    occurred_at = {o: occ for c in listeners for o, (occ, _) in c.final_at.items()}
    queue = sorted(
        (follower[o] + offset - occurred_at[o]) * 1000 for o in occurred_at if o in follower
    )
    return {
        "clients": clients,
        "users": len(stack.users),
        "final_events_expected": clients,
        "final_events_delivered": len(delivered),
        "streams_ended_unavailable": sum(c.ended_early for c in listeners),
        "seconds_to_open_all": round(opened_in, 1),
        "latency_ms": figures(delivered),
        "order_status_queue_ms": figures(queue),
        "seconds": round(elapsed, 1),
        "client_cpu_percent": round(100 * client_cpu / elapsed, 1),
        "gateway_cpu_percent": round(100 * gateway_cpu / elapsed, 1),
        "gateway_rss_mib": {"before": rss_before, "streams_open": rss_open},
    }
