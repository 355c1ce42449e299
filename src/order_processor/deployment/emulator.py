"""The embedded AWS emulator: MiniStack as a server process on 127.0.0.1 and a free port.

MiniStack pins botocore exactly, which conflicts with aioboto3, so it lives in its own
virtual environment (`.venv-emu`, made by `make emulator-venv`), never in the project's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HEALTH_PATH = "/_ministack/health"
VENV_VARIABLE = "ORDER_PROCESSOR_EMULATOR_VENV"


class EmulatorError(RuntimeError):
    """The emulator is not installed, or did not start."""


@dataclass(frozen=True)
class Emulator:
    endpoint: str
    pid: int
    log_path: Path


def default_venv() -> Path:
    """`$ORDER_PROCESSOR_EMULATOR_VENV`, else `.venv-emu` in the checkout, else in the cwd."""
    configured = os.environ.get(VENV_VARIABLE)
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[3] / ".venv-emu"
    return checkout if checkout.exists() else Path.cwd() / ".venv-emu"


def ministack_binary(venv: Path) -> Path:
    binary = venv / "bin" / "ministack"
    if not binary.exists():
        raise EmulatorError(
            f"the embedded emulator (MiniStack) is not installed: {binary} is missing; "
            "run `make emulator-venv` (make run and make test do it for you)"
        )
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def is_healthy(endpoint: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(endpoint + HEALTH_PATH, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


START_ATTEMPTS = 3


class PortTaken(EmulatorError):
    """Another process took the free port between our choosing it and MiniStack binding it."""


@contextlib.contextmanager
def running_emulator(venv: Path | None = None, startup_timeout: float = 30.0) -> Iterator[Emulator]:
    """Start MiniStack, wait until it answers its health check, yield it, stop it by PID.

    A free port is only free when chosen: under parallel tests another process can bind it
    before MiniStack does, so a start that finds its port taken is tried again on another.
    """
    binary = ministack_binary(venv or default_venv())
    for attempt in range(1, START_ATTEMPTS + 1):
        process, emulator, log = _start(binary)
        try:
            _wait_until_healthy(process, emulator, startup_timeout)
        except PortTaken:
            stop(process)
            log.close()
            if attempt == START_ATTEMPTS:
                raise
            continue
        except BaseException:
            stop(process)
            log.close()
            raise
        try:
            yield emulator
        finally:
            stop(process)
            log.close()
        return


def _start(binary: Path) -> tuple[subprocess.Popen[bytes], Emulator, IO[bytes]]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="ministack-", suffix=".log", delete=False)  # noqa: SIM115
    environment = {**os.environ, "BIND_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)}
    environment.pop("USE_SSL", None)
    process = subprocess.Popen(
        [str(binary)],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so stop() reaches any children
    )
    return process, Emulator(f"http://127.0.0.1:{port}", process.pid, Path(log.name)), log


def _wait_until_healthy(
    process: subprocess.Popen[bytes], emulator: Emulator, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = _log_tail(emulator.log_path)
            error = (
                PortTaken if "already in use" in _log_tail(emulator.log_path, 0) else EmulatorError
            )
            raise error(
                f"MiniStack exited with status {process.returncode} while starting: "
                f"{said or '(nothing in its log)'}; its log is {emulator.log_path}"
            )
        if is_healthy(emulator.endpoint):
            return
        time.sleep(0.1)
    raise EmulatorError(
        f"MiniStack did not answer within {timeout:.0f} s; log: {emulator.log_path}"
    )


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    said = [line.strip() for line in text.strip().splitlines()]
    return " / ".join(said[-lines:] if lines else said)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
