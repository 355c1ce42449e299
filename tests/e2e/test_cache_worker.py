"""The cache worker, a real process (`order-processor worker cache`): events on the topic
reach the read model; Redis taken away mid-run leaves it up, not ready, its events handed
back until Redis is back; SIGTERM stops it with exit 0. It needs no JWT secret; without
`REDIS_URL` it does not start: one line, exit 2."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from order_processor.bootstrap.cache import open_read_model
from order_processor.deployment.emulator import free_port
from order_processor.deployment.redis_server import RedisServer
from order_processor.domain.events import Event
from order_processor.messaging.publisher import EventPublisher
from order_processor.readmodel.ports import ReadModelUnavailable
from tests.contracts.read_model import deposit
from tests.e2e.harness import Harness
from tests.e2e.test_observability import get
from tests.support import CLI


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of the test's own: it is stopped and started again mid-test."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


async def until(
    check: Callable[[], Awaitable[bool]], harness: Harness, seconds: float = 30
) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, harness.worker_output()
        await asyncio.sleep(0.2)


async def test_the_worker_rides_out_redis_away_and_stops_on_sigterm(
    harness: Harness, redis_server: RedisServer
) -> None:
    settings = harness.settings.overridden({"redis_url": redis_server.url})
    port = free_port()
    queue = await harness.clients.queue_url(settings.resources().order_cache_queue.name)
    publisher = EventPublisher(harness.clients.sns, await harness.clients.topic_arn(queue))
    worker = harness.start_worker(
        kind="cache",
        burst=False,
        env={
            "REDIS_URL": redis_server.url,
            "ORDER_PROCESSOR_METRICS_PORT": str(port),
            # a long poll in progress at the stop is let to answer within the grace
            "ORDER_PROCESSOR_SHUTDOWN_GRACE_SECONDS": "2",
            "ORDER_PROCESSOR_JWT_SECRET": "",  # events carry no token: it runs without
        },
    )
    try:
        async with open_read_model(settings) as model:

            async def streamed(event: Event) -> bool:
                with contextlib.suppress(ReadModelUnavailable):
                    read = await model.events_after(event.username or "", None, 10)
                    return event in [s.event for s in read.events]
                return False

            async def ready(status: int) -> bool:
                return (await asyncio.to_thread(get, f"http://127.0.0.1:{port}/readyz"))[
                    0
                ] == status

            before = deposit("cache_user")
            await publisher.publish([before])
            await until(lambda: streamed(before), harness)
            await until(lambda: ready(200), harness)

            redis_server.stop()
            during = deposit("cache_user")
            await publisher.publish([during])
            await until(lambda: ready(503), harness)
            assert "redis" in (await asyncio.to_thread(get, f"http://127.0.0.1:{port}/readyz"))[1]
            assert worker.poll() is None, harness.worker_output()

            redis_server.start()  # empty: the read model is a cache
            await until(lambda: streamed(during), harness)
            await until(lambda: ready(200), harness)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    assert await harness.wait(worker, 30) == 0, harness.worker_output()


@pytest.mark.parametrize(
    "command",
    [[CLI, "worker", "cache", "--burst"], [sys.executable, "-m", "workers.cache", "--burst"]],
    ids=["cli", "module"],
)
def test_the_worker_without_redis_url_says_so_in_one_line_and_exits_2(
    harness: Harness, command: list[str]
) -> None:
    environment = harness.worker_environment()
    environment.pop("REDIS_URL", None)
    environment.pop("ORDER_PROCESSOR_JWT_SECRET", None)
    done = subprocess.run(command, env=environment, capture_output=True, timeout=60)
    assert done.returncode == 2
    said = done.stderr.decode().strip().splitlines()
    assert len(said) == 1
    assert "REDIS_URL is not set" in said[0]
