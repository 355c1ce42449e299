"""The read model's Redis for tests and local runs: Debian's `redis-server` on 127.0.0.1
and a free port, in a temporary directory, without persistence (the read model is a cache:
a restarted Redis starts empty, and the model refills from DynamoDB and the topic).

`RedisServer` keeps its port and directory across `stop()` and `start()`, so a test can
take Redis away mid-run and bring it back where the programs look for it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from order_processor.deployment.emulator import free_port, stop

BINARY = "redis-server"
START_ATTEMPTS = 3


class RedisServerError(RuntimeError):
    """redis-server is not installed, or did not start."""


def redis_binary() -> str:
    binary = shutil.which(BINARY)
    if binary is None:
        raise RedisServerError(
            f"{BINARY} is not installed (the read model's Redis): run `make redis`"
        )
    return binary


def answers_ping(port: int, timeout: float = 0.5) -> bool:
    """True when the server on `port` answers PING with PONG (inline command)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One redis-server: `start()` it (again, on the same port), `stop()` it by PID."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it answers PING; a start whose port another process
        took is tried again on another port (only before the first start succeeded)."""
        binary = redis_binary()
        for attempt in range(1, START_ATTEMPTS + 1):
            self.process = subprocess.Popen(
                [binary, *self._arguments()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            if self._wait_until_answering(timeout):
                return
            said = self._log_tail()
            self.stop()
            if "Address already in use" in said and attempt < START_ATTEMPTS:
                self.port = free_port()
                continue
            raise RedisServerError(
                f"redis-server did not answer on port {self.port}: {said or '(no log)'}; "
                f"its log is {self.log_path}"
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bound; the directory is kept for `start()`."""
        if self.process is not None:
            stop(self.process, timeout=5.0)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _arguments(self) -> list[str]:
        return [
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def _wait_until_answering(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if answers_ping(self.port):
                return True
            time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " / ".join(line.strip() for line in lines[-3:])


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A redis-server for the block, stopped and its directory removed after."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
