"""The endpoint away: every program stays up through an outage (the fault proxy cuts every
request), answers /readyz 503 meanwhile without filling its logs with tracebacks, and
catches up afterwards: commands sent during the outage are carried out, prices move, a
waiting order fills, an order falls due and expires."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from order_processor.deployment.emulator import free_port
from order_processor.domain.orders import OrderStatus
from order_processor.faultproxy import FaultPlan, FaultProxyHandle
from tests.e2e.harness import Harness
from tests.e2e.test_observability import get, until_answered, until_status
from tests.ledger import assert_ledger

PROGRAMS = ("orders", "limit-matcher", "expiry-sweeper", "analytics")
OUTAGE_SECONDS = 12.0


@pytest.mark.timeout(180)
async def test_every_program_rides_out_an_outage_and_catches_up(
    harness: Harness, proxy: FaultProxyHandle
) -> None:
    await harness.create_user("outage_u", usd="1000")
    await harness.add_asset("BTC", "100")
    ports = {kind: free_port() for kind in PROGRAMS}
    programs = {
        kind: harness.start_worker(
            burst=False,
            kind=kind,
            extra=("--interval", "1")
            if kind == "expiry-sweeper"
            else ("--rematch-interval", "1")
            if kind == "limit-matcher"
            else (),
            env={"AWS_ENDPOINT_URL": proxy.endpoint, "ORDER_PROCESSOR_METRICS_PORT": str(port)},
        )
        for kind, port in ports.items()
    }
    base = {kind: f"http://127.0.0.1:{port}" for kind, port in ports.items()}
    try:
        for kind in PROGRAMS:
            await until_answered(base[kind] + "/readyz", 200, harness)
        due_in_the_outage = (datetime.now(UTC) + timedelta(seconds=8)).isoformat()
        before = harness.market("outage_u", "buy", "BTC", "1")
        expiring = harness.limit("outage_u", "buy", "BTC", "1", "50", expires_at=due_in_the_outage)
        await harness.send(before, expiring)
        await until_status(harness, before.payload.order_id, OrderStatus.COMPLETED)
        await until_status(harness, expiring.payload.order_id, OrderStatus.QUEUED)

        proxy.set_plan(FaultPlan.parse("outage=on"))
        began = time.monotonic()
        during = [
            harness.market("outage_u", "buy", "BTC", "2"),
            harness.limit("outage_u", "buy", "BTC", "1", "90"),
        ]
        await harness.send(*during)  # the harness reaches the emulator directly
        await harness.send_prices(("BTC", "85"))
        for kind in PROGRAMS:
            await until_answered(base[kind] + "/readyz", 503, harness)
        alive = {kind: get(base[kind] + "/livez")[0] for kind in PROGRAMS}
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - began)))
        running = {kind: process.poll() is None for kind, process in programs.items()}
        outage_log = harness.worker_output()
        proxy.set_plan(FaultPlan.parse(""))

        for kind in PROGRAMS:
            await until_answered(base[kind] + "/readyz", 200, harness)
        market, waiting = (command.payload.order_id for command in during)
        await until_status(harness, market, OrderStatus.COMPLETED)
        await until_status(harness, waiting, OrderStatus.COMPLETED)
        await until_status(harness, expiring.payload.order_id, OrderStatus.EXPIRED)
    finally:
        for process in programs.values():
            process.send_signal(signal.SIGTERM)
        codes = {kind: await harness.wait(process, 60) for kind, process in programs.items()}

    assert running == {kind: True for kind in PROGRAMS}
    assert alive == {kind: 200 for kind in PROGRAMS}
    assert codes == {kind: 0 for kind in PROGRAMS}, harness.worker_output()
    assert "Traceback" not in outage_log
    filled = [await harness.order(o) for o in (before.payload.order_id, market, waiting)]
    assert filled[2].price == 85  # the price sent during the outage, applied after it
    assert await harness.available("outage_u") == 1000 - sum(o.total_amount or 0 for o in filled)
    await assert_ledger(harness.clients, "outage_u")


async def test_a_program_started_during_an_outage_waits_for_the_endpoint(
    harness: Harness, proxy: FaultProxyHandle
) -> None:
    """Restarted while AWS is away (a pod rescheduled in an outage), a program waits for
    the endpoint, not ready, instead of exiting into a restart loop."""
    await harness.create_user("late_u", usd="100")
    await harness.add_asset("BTC", "10")
    proxy.set_plan(FaultPlan.parse("outage=on"))
    port = free_port()
    worker = harness.start_worker(
        burst=False,
        env={
            "AWS_ENDPOINT_URL": proxy.endpoint,
            "ORDER_PROCESSOR_METRICS_PORT": str(port),
            "AWS_MAX_ATTEMPTS": "2",  # botocore gives up within the outage, we do not
        },
    )
    try:
        await until_answered(f"http://127.0.0.1:{port}/livez", 200, harness)
        await asyncio.sleep(4)
        waiting = (worker.poll(), get(f"http://127.0.0.1:{port}/readyz")[0])
        proxy.set_plan(FaultPlan.parse(""))
        buy = harness.market("late_u", "buy", "BTC", "1")
        await harness.send(buy)
        await until_status(harness, buy.payload.order_id, OrderStatus.COMPLETED)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await harness.wait(worker, 60)

    assert waiting == (None, 503)
    assert code == 0, harness.worker_output()
    assert "starting: AWS is unreachable" in harness.worker_output()
