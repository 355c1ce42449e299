"""The read model's Redis for tests and local runs: Debian's `redis-server` on 127.0.0.1
and a free port, in a temporary directory, without persistence (the read model is a cache:
a restarted Redis starts empty, and the model refills from DynamoDB and the topic).

`RedisServer` keeps its port and directory across `stop()` and `start()`, so a test can
take Redis away mid-run and bring it back where the programs look for it.

`RedisServer(cluster=True)` is a one-node Redis Cluster, as ElastiCache Serverless speaks:
cluster mode (database 0 only, SELECT refused, every multi-key command and script within
one hash slot, else CROSSSLOT). Its first start assigns the node all 16384 slots; the node
remembers them in `nodes.conf` (in its directory), so a start after a stop serves them
again. A start returns once the cluster says `cluster_state:ok` (a second or two).
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
SLOTS = 16384


class RedisServerError(RuntimeError):
    """redis-server is not installed, or did not start."""


def redis_binary() -> str:
    binary = shutil.which(BINARY)
    if binary is None:
        raise RedisServerError(
            f"{BINARY} is not installed (the read model's Redis): run `make redis`"
        )
    return binary


def ask(port: int, command: str, timeout: float = 0.5) -> bytes:
    """The start of the server's answer to one inline command; b"" when it does not
    answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(command.encode() + b"\r\n")
            return sock.recv(4096)
    except OSError:
        return b""


def answers_ping(port: int, timeout: float = 0.5) -> bool:
    """True when the server on `port` answers PING with PONG (inline command)."""
    return ask(port, "PING", timeout).startswith(b"+PONG")


def cluster_ok(port: int) -> bool:
    """True when the cluster node on `port` serves every slot (`cluster_state:ok`)."""
    return b"cluster_state:ok" in ask(port, "CLUSTER INFO")


CLUSTER_BUS_OFFSET = 10000
HIGHEST_CLUSTER_PORT = 65535 - CLUSTER_BUS_OFFSET


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class RedisServer:
    """One redis-server: `start()` it (again, on the same port), `stop()` it by PID;
    `cluster`: a one-node cluster."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))
    process: subprocess.Popen[bytes] | None = None
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and self.port > HIGHEST_CLUSTER_PORT:
            self.port = self._free_port()

    def _free_port(self) -> int:
        """A free port; for a cluster node one whose bus port (port + 10000) exists and is
        free too: above 55535 redis-server refuses to start ("port number too high")."""
        while True:
            port = free_port()
            if not self.cluster:
                return port
            if port <= HIGHEST_CLUSTER_PORT and _free(port + CLUSTER_BUS_OFFSET):
                return port

    @property
    def url(self) -> str:
        """Database 0 named on a single node; none on a cluster (it has only 0)."""
        if self.cluster:
            return f"redis://127.0.0.1:{self.port}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def nodes_path(self) -> Path:
        return self.directory / "nodes.conf"

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
                if self.cluster:
                    self._wait_until_serving(timeout)
                return
            said = self._log_tail()
            self.stop()
            if "Address already in use" in said and attempt < START_ATTEMPTS:
                self.port = self._free_port()
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
            *self._cluster_arguments(),
        ]  # fmt: skip

    def _cluster_arguments(self) -> list[str]:
        if not self.cluster:
            return []
        return ["--cluster-enabled", "yes", "--cluster-config-file", str(self.nodes_path)]

    def _wait_until_serving(self, timeout: float) -> None:
        """Give a new node every slot (a restarted one has them from `nodes.conf`) and
        wait until the cluster is ok."""
        if f"cluster_slots_assigned:{SLOTS}".encode() not in ask(self.port, "CLUSTER INFO"):
            answer = ask(self.port, f"CLUSTER ADDSLOTSRANGE 0 {SLOTS - 1}")
            if not answer.startswith(b"+OK"):
                self.stop()
                raise RedisServerError(f"redis-server refused its slots: {answer!r}")
        deadline = time.monotonic() + timeout
        while not cluster_ok(self.port):
            if time.monotonic() > deadline or self.process is None:
                self.stop()
                raise RedisServerError(
                    f"the cluster on port {self.port} is not ok after {timeout}s; "
                    f"its log is {self.log_path}"
                )
            time.sleep(0.05)

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
def running_redis(*, cluster: bool = False) -> Iterator[RedisServer]:
    """A redis-server (a one-node cluster with `cluster`) for the block, stopped and its
    directory removed after."""
    server = RedisServer(cluster=cluster)
    try:
        server.start()
        yield server
    finally:
        server.remove()
