"""Found by the issue-21 attacker; each test failed first.

The expiry sweeper does not stop within its grace while AWS holds
its answers (a network that drops packets rather than resetting connections): SIGTERM
waits for the sweep in progress, that is for botocore's six attempts of 30 s read timeout,
minutes, and the kubelet's SIGKILL (terminationGracePeriodSeconds 40, compose's 30 s)
comes first.

README ("Kubernetes with KEDA"): "the pod gets SIGTERM ... the program finishes its
in-flight work within the grace and hands the rest back before the kubelet's SIGKILL".
The order worker, the matcher and the analytics worker bound their stop (the consumer
cancels what outlives the grace); the sweeper's loop only looks at the stop between
sweeps (`serve_sweeper`, `_sweep_once`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time

import pytest

from order_processor.deployment.emulator import free_port
from order_processor.faultproxy import FaultPlan, FaultProxyHandle
from tests.e2e.harness import Harness
from tests.e2e.test_observability import until_answered

KUBELET_GRACE = 40.0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["orders", "expiry-sweeper"])  # orders holds: the contrast
async def test_a_program_stops_within_its_grace_while_aws_holds_its_answers(
    harness: Harness, proxy: FaultProxyHandle, kind: str
) -> None:
    port = free_port()
    sweeper = harness.start_worker(
        burst=False,
        kind=kind,
        extra=("--interval", "1") if kind == "expiry-sweeper" else (),
        env={"AWS_ENDPOINT_URL": proxy.endpoint, "ORDER_PROCESSOR_METRICS_PORT": str(port)},
    )
    try:
        await until_answered(f"http://127.0.0.1:{port}/readyz", 200, harness)
        proxy.set_plan(FaultPlan.parse("slow=1:600000"))  # answers held, connections open
        await asyncio.sleep(3)  # a sweep is waiting on its Query
        sweeper.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(sweeper.wait, KUBELET_GRACE + 20)
        took = time.monotonic() - stopped
        exited = sweeper.poll()
    finally:
        proxy.set_plan(FaultPlan.parse(""))
        if sweeper.poll() is None:
            sweeper.kill()
            sweeper.wait()

    grace = harness.settings.shutdown_grace_seconds
    assert exited == 0
    assert took <= grace + 5, (
        f"still running {took:.0f} s after SIGTERM (grace {grace:g} s, the kubelet's "
        f"SIGKILL at {KUBELET_GRACE:g} s)"
    )
