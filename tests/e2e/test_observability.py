"""The worker's metrics endpoint counts what a scenario did; its logs are JSON lines with
the command's context bound; readiness follows the worker's life."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import urllib.error
import urllib.request

from order_processor.deployment.emulator import free_port
from order_processor.domain.base import utc_now
from order_processor.domain.orders import OrderStatus
from tests.e2e.harness import AHEAD, DUE_IN, Harness


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


async def test_metrics_count_what_the_worker_did(harness: Harness) -> None:
    await harness.create_user("metric_u")
    await harness.add_asset("BTC", "100")
    deposit = harness.factory.deposit("metric_u", "150")
    good = harness.market("metric_u", "buy", "BTC", "1")
    too_big = harness.market("metric_u", "buy", "BTC", "1")  # 50 left: fails
    await harness.send(deposit, good, too_big)
    await harness.send_raw("{broken", group="junk")
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    worker = harness.start_worker(burst=False, concurrency=4, extra=("--metrics-port", str(port)))
    try:
        deadline = time.monotonic() + 60
        while True:
            _status, body = get(base + "/metrics")
            if 'commands_processed_total{type="PlaceOrder"} 2.0' in body:
                break
            assert time.monotonic() < deadline, (body, harness.worker_output())
            await asyncio.sleep(0.2)
        ready = get(base + "/readyz")
        alive = get(base + "/livez")
        missing = get(base + "/nothing")
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await harness.wait(worker, 60) == 0

    assert (ready[0], alive[0], missing[0]) == (200, 200, 404)
    lines = set(body.splitlines())
    assert 'order_processor_commands_processed_total{type="Deposit"} 1.0' in lines
    assert 'order_processor_commands_rejected_total{reason="MALFORMED_JSON"} 1.0' in lines
    assert 'order_processor_orders_failed_total{reason="INSUFFICIENT_BALANCE"} 1.0' in lines
    # The user's three commands arrive in one receive: decided together from one read,
    # written in one transaction (the refused buy ends FAILED in it), published together.
    assert 'order_processor_group_commits_total{outcome="committed"} 1.0' in lines
    assert 'order_processor_saga_step_seconds_count{step="grouped"} 1.0' in lines
    assert (
        'order_processor_aws_calls_total{operation="BatchGetItem",service="dynamodb"} 1.0' in lines
    )
    # No retries against the emulator: one HTTP request per call.
    assert (
        'order_processor_aws_requests_total{operation="BatchGetItem",service="dynamodb"} 1.0'
        in lines
    )
    assert (
        'order_processor_aws_calls_total{operation="TransactWriteItems",service="dynamodb"} 1.0'
        in lines
    )
    assert "# TYPE order_processor_messages_in_flight gauge" in lines
    assert (await harness.order(good.payload.order_id)).status is OrderStatus.COMPLETED
    records = [
        json.loads(line) for line in harness.worker_output().splitlines() if line.startswith("{")
    ]
    handled = [r for r in records if r.get("event", "").startswith("command handled")]
    completed = next(r for r in handled if r.get("order_id") == good.payload.order_id)
    assert completed["username"] == "metric_u"
    assert completed["command"] == "PlaceOrder"
    assert completed["step"] == "completed"
    assert completed["message_id"]


def sample(body: str, name: str) -> float:
    """The value of one exposed sample line (`name` with its labels), 0 when absent."""
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_all_three_programs_serve_their_own_metrics_and_readiness(harness: Harness) -> None:
    await harness.create_user("scrape_u", usd="1000")
    await harness.add_asset("BTC", "100")
    waiting = harness.limit("scrape_u", "buy", "BTC", "1", "90")
    expiring = harness.limit("scrape_u", "buy", "BTC", "1", "50", expires_at=utc_now() + DUE_IN)
    await harness.send(waiting, expiring)
    assert await harness.run_worker() == 0, harness.worker_output()
    for order in (waiting, expiring):
        assert (await harness.order(order.payload.order_id)).status is OrderStatus.QUEUED
    # The worker and the sweeper run their clocks ahead: the expiring order is due to them.
    later = ("--now", (utc_now() + AHEAD).isoformat())
    ports = {kind: free_port() for kind in ("orders", "limit-matcher", "expiry-sweeper")}
    programs = {
        kind: harness.start_worker(
            burst=False,
            kind=kind,
            extra=("--interval", "1", *later) if kind == "expiry-sweeper" else (),
            env={"ORDER_PROCESSOR_METRICS_PORT": str(port)},
            ahead=AHEAD if kind == "orders" else None,
        )
        for kind, port in ports.items()
    }
    base = {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}
    try:
        for kind in programs:
            await until_answered(base[kind] + "/readyz", 200, harness)
        await harness.send_prices(("BTC", "85"))
        await until_status(harness, waiting.payload.order_id, OrderStatus.COMPLETED)
        await until_status(harness, expiring.payload.order_id, OrderStatus.EXPIRED)
        scraped = {kind: get(base[kind] + "/metrics")[1] for kind in programs}
        ready = {kind: get(base[kind] + "/readyz") for kind in programs}
        alive = {kind: get(base[kind] + "/livez")[0] for kind in programs}
    finally:
        for process in programs.values():
            process.send_signal(signal.SIGTERM)
        codes = [await harness.wait(process, 60) for process in programs.values()]

    assert codes == [0, 0, 0], harness.worker_output()
    assert alive == {kind: 200 for kind in programs}
    matcher, sweeper, worker = (
        scraped["limit-matcher"],
        scraped["expiry-sweeper"],
        scraped["orders"],
    )
    assert sample(matcher, "order_processor_price_updates_total") == 1
    assert sample(matcher, 'order_processor_orders_triggered_total{cause="update"}') == 1
    assert sample(sweeper, "order_processor_orders_expired_total") >= 1
    assert sample(sweeper, "order_processor_sweeps_total") >= 1
    assert sample(worker, 'order_processor_commands_processed_total{type="ExpireOrder"}') >= 1
    assert sample(worker, 'order_processor_commands_processed_total{type="ExecuteOrder"}') == 1
    for body in scraped.values():
        assert sample(body, "process_resident_memory_bytes") > 10 * 2**20
        assert sample(body, "process_open_fds") > 0
    assert "commands_processed_total" not in sweeper  # each program, its own metrics
    resources = harness.settings.resources()
    for kind, (status, body) in ready.items():
        checks = json.loads(body)["checks"]
        assert status == 200
        assert all(check["ok"] for check in checks)
        assert (f"table {resources.users_table}" in [c["name"] for c in checks]) is (
            kind == "orders"
        )


async def until_answered(url: str, status: int, harness: Harness) -> None:
    deadline = time.monotonic() + 60
    while get(url)[0] != status:
        assert time.monotonic() < deadline, harness.worker_output()
        await asyncio.sleep(0.2)


async def until_status(harness: Harness, order_id: str, status: OrderStatus) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(Exception):
            if (await harness.order(order_id)).status is status:
                return
        assert time.monotonic() < deadline, harness.worker_output()
        await asyncio.sleep(0.2)
