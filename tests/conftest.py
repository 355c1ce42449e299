"""Fixtures shared by every test: the AWS endpoint and an isolated deployment prefix.

With AWS_ENDPOINT_URL set (LocalStack, a MiniStack you run), the suite uses it; otherwise
it starts one embedded emulator for the whole session. Each test gets its own resource
prefix, so tests never see each other's tables or queues.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from order_processor.config import Settings
from order_processor.deployment.emulator import running_emulator
from order_processor.deployment.redis_server import running_redis


def pytest_configure(config: pytest.Config) -> None:
    """`make test` measures coverage in pytest's own processes (the xdist workers, which
    coverage's subprocess patch starts measured); the programs and CLI runs the tests start
    are measured only under `make coverage` (COVER_SUBPROCESSES=1): tracing every one of
    them costs about a quarter more CPU."""
    worker = hasattr(config, "workerinput")  # an xdist worker, measured from its start
    if worker and os.environ.get("COVER_SUBPROCESSES") != "1":
        os.environ.pop("COVERAGE_PROCESS_CONFIG", None)


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield configured
        return
    with running_emulator() as emulator:
        yield emulator.endpoint


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The read model's Redis: `REDIS_URL` when set, else a redis-server of this pytest
    worker's own (each test keeps to its own key prefix)."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    with running_redis() as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A one-node Redis Cluster of this pytest worker's own (cluster mode as ElastiCache
    Serverless speaks it: database 0 only, one hash slot per command and script):
    `REDIS_CLUSTER_URL` when set."""
    configured = os.environ.get("REDIS_CLUSTER_URL")
    if configured:
        yield configured
        return
    with running_redis(cluster=True) as server:
        yield server.url


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(aws_endpoint: str, prefix: str) -> Settings:
    return Settings(endpoint_url=aws_endpoint, prefix=prefix)
