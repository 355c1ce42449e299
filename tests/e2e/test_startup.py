"""A program's start-up against an endpoint that does not answer, and a metrics port that
cannot be had: a stop signal still stops it cleanly, a taken port is one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from order_processor.deployment.emulator import free_port
from tests.support import CLI

SECRET = "startup-secret-" + "s" * 32


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """Accepts connections (the kernel's backlog) and never answers a request."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def environment(endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDER_PROCESSOR_", "AWS_"))}
    env |= {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "ORDER_PROCESSOR_JWT_SECRET": SECRET,
    }
    return env | extra


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["orders", "limit-matcher", "expiry-sweeper"])
def test_sigterm_during_a_hung_start_up_stops_the_program_cleanly(
    silent_endpoint: str, kind: str
) -> None:
    port = free_port()
    program = subprocess.Popen(
        [CLI, "worker", kind, "--metrics-port", str(port)],
        env=environment(silent_endpoint),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not answers(f"http://127.0.0.1:{port}/livez"):  # its signal handler is set
            assert program.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert not answers(f"http://127.0.0.1:{port}/readyz")  # still starting
        program.send_signal(signal.SIGTERM)
        code = program.wait(30)  # not after every retry of every start-up call
    finally:
        program.kill()
        output = program.communicate()[0].decode()

    assert code == 0, output
    assert "stopped during start-up" in output
    assert "Traceback" not in output


def test_a_metrics_port_already_taken_is_one_line_not_a_traceback(silent_endpoint: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [CLI, "worker", "orders", "--metrics-port", str(port)],
            env=environment(silent_endpoint, ORDER_PROCESSOR_METRICS_HOST="127.0.0.1"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
