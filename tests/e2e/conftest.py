"""End-to-end: real worker processes against the emulator, each test its own deployment."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from order_processor.bootstrap import AwsClients, open_clients
from order_processor.config import QueueKind, Settings
from order_processor.faultproxy import FaultPlan, FaultProxyHandle, fault_proxy
from tests.e2e.harness import Harness
from tests.support import deployed

SECRET = "e2e-secret-" + "x" * 32


def deployment_settings(
    endpoint: str, kind: QueueKind = QueueKind.FIFO, **overrides: Any
) -> Settings:
    return Settings(
        endpoint_url=endpoint,
        prefix=f"e{uuid.uuid4().hex[:12]}",
        queue_kind=kind,
        jwt_secret=SECRET,
        visibility_timeout=5,
        shutdown_grace_seconds=15,
        **overrides,
    )


@pytest.fixture
def deployment(aws_endpoint: str) -> Iterator[Settings]:
    with deployed(deployment_settings(aws_endpoint)) as settings:
        yield settings


# What the tests marked `aws_faults` run their programs through: AWS on a mildly bad day.
# Conflicts are real (only transactions truly in flight together), lost answers are met
# by the transactions' request tokens, throttling and 5xx by botocore and the handlers.
LOW_AWS_FAULTS = (
    "throttle=0.03,5xx=0.01,lost=0.01,reset=0.01,conflict=on,hold-ms=5,unprocessed=0.03,"
    "partial=0.03,stale-receipt=0.01,lag-ms=500"
)


@pytest.fixture
async def harness(deployment: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with open_clients(deployment) as clients:
        harness = await Harness.start(deployment, clients)
        if request.node.get_closest_marker("aws_faults") is None:
            yield harness
            return
        assert deployment.endpoint_url is not None
        plan = FaultPlan.parse(LOW_AWS_FAULTS)
        with fault_proxy(
            deployment.endpoint_url, plan, seed=zlib.crc32(request.node.nodeid.encode())
        ) as proxy:
            harness.program_env = {"AWS_ENDPOINT_URL": proxy.endpoint}
            yield harness


@pytest.fixture
async def aws(deployment: Settings) -> AsyncIterator[AwsClients]:
    async with open_clients(deployment) as clients:
        yield clients


@pytest.fixture
async def strict_harness(aws_endpoint: str) -> AsyncIterator[Harness]:
    """Commands go to the dead letters after two unforeseen failures, not five."""
    with deployed(deployment_settings(aws_endpoint, max_failures=2)) as settings:
        async with open_clients(settings) as clients:
            yield await Harness.start(settings, clients)


@pytest.fixture
def proxy(harness: Harness) -> Iterator[FaultProxyHandle]:
    """A fault proxy in front of the harness's emulator, faultless until a test sets a plan."""
    assert harness.settings.endpoint_url is not None
    with fault_proxy(harness.settings.endpoint_url, FaultPlan.parse("")) as handle:
        yield handle
