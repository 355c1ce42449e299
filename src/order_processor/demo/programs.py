"""The demo's programs, each a process of its own as deployed: two order workers, the
limit matcher, the expiry sweeper, the analytics worker, the cache worker and the gateway
(with a redis-server for the read model unless `REDIS_URL` names one); started, awaited
until ready, and stopped as a deployment stops them (SIGTERM, then a grace period)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from order_processor.deployment.emulator import free_port
from order_processor.deployment.redis_server import RedisServer

WORKERS = [
    ("order worker 1", ["workers.order_worker"]),
    ("order worker 2", ["workers.order_worker"]),
    ("limit matcher", ["workers.limit_matcher"]),
    ("expiry sweeper", ["workers.expiry_sweeper", "--interval", "5"]),
    ("analytics worker", ["workers.analytics"]),
    ("cache worker", ["workers.cache"]),
    ("gateway", ["workers.gateway"]),
]


@dataclass
class Programs:
    logs: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="order-processor-demo-"))
    )
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    health_urls: dict[str, str] = field(default_factory=dict)
    gateway_port: int = field(default_factory=free_port)
    redis: RedisServer | None = None

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self, environment: dict[str, str]) -> None:
        """Each program on its own loopback metrics port (see `wait_until_ready`), its
        output in a file of `logs`; the gateway on `gateway_port`."""
        if not environment.get("REDIS_URL"):
            (self.logs / "redis").mkdir(exist_ok=True)
            self.redis = RedisServer(directory=self.logs / "redis")
            self.redis.start()
            environment = environment | {"REDIS_URL": self.redis.url}
            print(f"redis-server on port {self.redis.port} (the read model)", flush=True)
        for name, arguments in WORKERS:
            log = (self.logs / f"{name.replace(' ', '-')}.log").open("wb")
            port = free_port()
            own = {"ORDER_PROCESSOR_METRICS_HOST": "127.0.0.1"}
            own["ORDER_PROCESSOR_METRICS_PORT"] = str(port)
            if name == "gateway":
                own["ORDER_PROCESSOR_GATEWAY_PORT"] = str(self.gateway_port)
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", *arguments],
                    env=environment | own,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            self.health_urls[name] = f"http://127.0.0.1:{port}"
        pids = " ".join(str(p.pid) for p in self.processes)
        print(
            f"started {len(self.processes)} programs (pids {pids}); logs in {self.logs}",
            flush=True,
        )
        print(f"gateway: {self.gateway_url} (the HTTP API of docs/openapi.json)", flush=True)

    async def wait_until_ready(self, limit: float = 60) -> None:
        """Until every program answers /readyz with 200 (its tables, queues and topic
        checked), so that the load measures the system and not its start-up."""
        started = time.monotonic()
        waiting = dict(zip(self.health_urls, self.processes, strict=True))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while waiting:
                for name, process in list(waiting.items()):
                    if process.poll() is not None:
                        raise RuntimeError(f"{name} exited ({process.returncode}); see {self.logs}")
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with http.get(self.health_urls[name] + "/readyz") as answer:
                            if answer.status == 200:
                                del waiting[name]
                if time.monotonic() - started > limit:
                    raise RuntimeError(f"not ready after {limit:.0f} s: {', '.join(waiting)}")
                if waiting:
                    await asyncio.sleep(0.1)
        print(f"all programs ready in {time.monotonic() - started:.1f} s", flush=True)

    def stop(self, grace: float = 30) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.redis is not None:
            self.redis.stop()
