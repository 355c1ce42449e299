"""The fault proxy as a process of its own, for a `with` block: what tests, the chaos run
and the benchmark start in front of the emulator."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from order_processor.deployment.emulator import free_port
from order_processor.faultproxy.rates import FaultPlan
from order_processor.faultproxy.stats import ProxyStats

CONTROL = "/_faultproxy"


class FaultProxyError(RuntimeError):
    """The proxy did not start, or refused a control request."""


@dataclass(frozen=True)
class FaultProxyHandle:
    endpoint: str
    pid: int

    def stats(self) -> ProxyStats:
        return ProxyStats.from_document(self._call("GET", "/stats"))

    def reset_stats(self) -> None:
        self._call("POST", "/stats/reset", {})

    def set_plan(self, plan: FaultPlan, seed: int | None = None) -> None:
        """Replace the plan; with a seed, the dice start again from it."""
        self._call("POST", "/plan", {"faults": plan.text(), "seed": seed})

    def catch_up_indexes(self) -> int:
        """Every write on its way to a lagging index lands now; how many items."""
        copied: int = self._call("POST", "/lag/catch-up", {})["copied"]
        return copied

    def expire_credentials(self, access_key_id: str | None = None) -> list[str]:
        """Expire this key (else the last one seen); the keys now expired."""
        answer = self._call("POST", "/expire-credentials", {"access_key_id": access_key_id})
        expired: list[str] = answer["expired"]
        return expired

    def _call(self, method: str, path: str, document: Any = None) -> Any:
        data = None if document is None else json.dumps(document).encode()
        request = urllib.request.Request(
            self.endpoint + CONTROL + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            raise FaultProxyError(f"{method} {path}: {refused.read().decode()}") from refused


@contextlib.contextmanager
def fault_proxy(
    upstream: str, plan: FaultPlan | None = None, seed: int = 0, *, startup_timeout: float = 20
) -> Iterator[FaultProxyHandle]:
    """A proxy process in front of `upstream` for the block; stopped by PID after it.
    Without a plan, $ORDER_PROCESSOR_FAULTS's (none when unset)."""
    port = free_port()
    command = [sys.executable, "-m", "order_processor.faultproxy", "--upstream", upstream]
    faults = (plan or FaultPlan.from_env()).text()
    command += ["--port", str(port), "--faults", faults, "--seed", str(seed)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    handle = FaultProxyHandle(f"http://127.0.0.1:{port}", process.pid)
    try:
        _wait_until_serving(process, handle, startup_timeout)
        yield handle
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(
    process: subprocess.Popen[bytes], handle: FaultProxyHandle, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(handle.endpoint + CONTROL + "/health", timeout=2):
                return
        except OSError:
            if process.poll() is not None:
                raise FaultProxyError(f"the fault proxy exited ({process.returncode})") from None
            if time.monotonic() > deadline:
                raise FaultProxyError(f"the fault proxy did not answer in {timeout} s") from None
            time.sleep(0.05)
