"""The worker's metrics endpoint counts what a scenario did; its logs are JSON lines with
the command's context bound; readiness follows the worker's life."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request

from order_processor.domain.orders import OrderStatus
from order_processor.emulator import free_port
from tests.e2e.harness import Harness


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
            if 'commands_processed_total{type="PlaceOrder"} 2' in body:
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
    assert 'order_processor_commands_processed_total{type="Deposit"} 1' in lines
    assert 'order_processor_commands_rejected_total{reason="MALFORMED_JSON"} 1' in lines
    assert 'order_processor_orders_failed_total{reason="INSUFFICIENT_BALANCE"} 1' in lines
    assert 'order_processor_saga_step_seconds_count{step="completed"} 1' in lines
    assert 'order_processor_saga_step_seconds_count{step="failed"} 1' in lines
    assert 'order_processor_saga_step_seconds_count{step="funds"} 1' in lines
    # One read (a deposit needs none), one write and one publish per command (the
    # refused buy: a second write).
    assert 'order_processor_aws_calls_total{operation="BatchGetItem",service="dynamodb"} 2' in lines
    assert (
        'order_processor_aws_calls_total{operation="TransactWriteItems",service="dynamodb"} 4'
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
