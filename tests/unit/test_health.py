"""The metrics and health endpoint as an HTTP client meets it: exact values, only GET and
HEAD, limits on what a client may send or hold, readiness from real checks."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest

from order_processor.bootstrap.compose import Operated
from order_processor.bootstrap.runtime import Lifecycle
from order_processor.observability import (
    SWEEPER,
    WORKER,
    Check,
    HealthServer,
    Metrics,
    Readiness,
)
from order_processor.observability.health import IDLE_CLIENT_SECONDS


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Metrics, Readiness]]:
    metrics, readiness = Metrics(WORKER), Readiness()
    server = HealthServer(metrics, readiness)
    port = await server.start(0, "127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port}", metrics, readiness
    finally:
        await server.stop()


async def fetch(method: str, url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        return response.status, await response.text()


async def test_a_counter_past_a_million_is_scraped_to_the_unit(
    served: tuple[str, Metrics, Readiness],
) -> None:
    base, metrics, _ = served
    metrics.inc("commands_processed_total", 1_234_567, type="PlaceOrder")

    status, body = await fetch("GET", base + "/metrics")

    assert status == 200
    assert 'order_processor_commands_processed_total{type="PlaceOrder"} 1.234567e+06' in body


async def test_the_process_collector_reports_cpu_memory_and_open_files(
    served: tuple[str, Metrics, Readiness],
) -> None:
    base, _, _ = served

    _, body = await fetch("GET", base + "/metrics")

    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert f"\n{name} " in body


def test_counting_a_metric_the_program_never_declared_fails_loudly() -> None:
    metrics = Metrics(SWEEPER)

    with pytest.raises(KeyError):
        metrics.inc("commands_processed_total", type="PlaceOrder")


def test_counting_with_labels_the_metric_was_not_declared_with_fails_every_time() -> None:
    metrics = Metrics()
    metrics.inc("commands_processed_total", type="PlaceOrder")

    for _ in range(2):  # a series found once is kept; a wrong one is never kept
        with pytest.raises(ValueError, match="label"):
            metrics.inc("commands_processed_total", kind="PlaceOrder")


def test_a_series_counts_on_whatever_order_its_labels_come_in() -> None:
    metrics = Metrics()

    metrics.inc("aws_calls_total", service="sqs", operation="ReceiveMessage")
    metrics.inc("aws_calls_total", operation="ReceiveMessage", service="sqs", amount=2)
    metrics.inc("aws_calls_total", service="sns", operation="PublishBatch")

    assert metrics.value("aws_calls_total", service="sqs", operation="ReceiveMessage") == 3
    assert metrics.value("aws_calls_total", service="sns", operation="PublishBatch") == 1


async def test_only_get_and_head_are_answered_and_head_has_no_body(
    served: tuple[str, Metrics, Readiness],
) -> None:
    base, _, _ = served

    assert await fetch("POST", base + "/metrics") == (405, "405: Method Not Allowed")
    assert await fetch("HEAD", base + "/livez") == (200, "")
    assert (await fetch("GET", base + "/nothing"))[0] == 404


async def raw(base: str, data: bytes, wait: float) -> tuple[bytes, bool]:
    """Send `data` and read until the server closes; (what came back, closed in time)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), wait)
        return answer, True
    except TimeoutError:
        return b"", False
    finally:
        writer.close()


async def test_a_70_kb_request_line_is_refused_not_crashed_on_nor_logged(
    served: tuple[str, Metrics, Readiness], caplog: pytest.LogCaptureFixture
) -> None:
    base, _, _ = served
    caplog.set_level(logging.DEBUG)

    answer, closed = await raw(base, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 10)

    assert closed
    assert answer.startswith(b"HTTP/1.")
    assert b" 400 " in answer.split(b"\r\n")[0]
    assert (await fetch("GET", base + "/livez"))[0] == 200  # still serving
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_an_idle_or_slow_client_is_let_go(served: tuple[str, Metrics, Readiness]) -> None:
    base, _, _ = served

    idle = raw(base, b"", IDLE_CLIENT_SECONDS + 5)
    slow = raw(base, b"GET /metrics HTTP/1.1\r\nHost: x\r\n", IDLE_CLIENT_SECONDS + 5)
    (_, idle_closed), (_, slow_closed) = await asyncio.gather(idle, slow)

    assert idle_closed
    assert slow_closed


async def test_readiness_waits_for_the_start_runs_the_checks_and_ends_at_the_stop(
    served: tuple[str, Metrics, Readiness],
) -> None:
    base, _, readiness = served

    async def fine() -> None:
        return None

    readiness.checks = [Check("table op-users", fine)]
    before = await fetch("GET", base + "/readyz")
    readiness.started = True
    during = await fetch("GET", base + "/readyz")
    readiness.stopping = True
    after = await fetch("GET", base + "/readyz")

    assert (before[0], during[0], after[0]) == (503, 200, 503)
    assert '"starting"' in before[1]
    assert '"stopping"' in after[1]
    assert '{"name": "table op-users", "ok": true}' in during[1]


async def test_a_failing_or_hanging_dependency_makes_the_program_unready_and_is_named() -> None:
    async def missing() -> None:
        raise RuntimeError("queue op-commands.fifo does not exist")

    async def hanging() -> None:
        await asyncio.sleep(3600)

    readiness = Readiness(
        [Check("queue op-commands.fifo", missing), Check("topic op-events", hanging)],
        timeout=0.2,
        started=True,
    )

    ready, results = await readiness.ready()

    assert not ready
    assert [(r.name, r.ok) for r in results] == [
        ("queue op-commands.fifo", False),
        ("topic op-events", False),
    ]
    assert "does not exist" in results[0].detail
    assert "no answer within 0.2 s" in results[1].detail


async def test_a_dependency_not_required_is_reported_and_leaves_the_program_ready(
    served: tuple[str, Metrics, Readiness],
) -> None:
    """The gateway's Redis: away, reads fall back to DynamoDB; every replica pulled out of
    the Service for it would take the API down with it."""
    base, _, readiness = served

    async def fine() -> None:
        pass

    async def refused() -> None:
        raise ConnectionRefusedError("Connection refused")

    readiness.checks = [Check("table op-users", fine), Check("read model", refused, False)]
    readiness.started = True

    status, body = await fetch("GET", base + "/readyz")

    assert status == 200
    assert (
        '{"name": "read model", "ok": false, "detail": "ConnectionRefusedError: Connection' in body
    )
    assert '"required": false}' in body


async def test_probes_within_the_cache_time_cost_one_round_of_checks() -> None:
    calls = 0
    now = [100.0]

    async def counted() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)

    readiness = Readiness(
        [Check("table op-orders", counted)], cache_seconds=5, started=True, clock=lambda: now[0]
    )

    await asyncio.gather(*(readiness.ready() for _ in range(20)))
    now[0] += 4
    await readiness.ready()
    assert calls == 1
    now[0] += 2
    await readiness.ready()
    assert calls == 2


async def test_a_program_that_answers_ready_has_frozen_what_start_up_made() -> None:
    operated = Operated(cast(Any, None), Metrics(), Readiness(), Lifecycle(asyncio.Event()))
    try:
        operated.ready()

        assert gc.get_freeze_count() > 0  # out of the collector's reach from now on
        assert operated.readiness.started
        assert operated.life.started.is_set()
    finally:
        gc.unfreeze()
