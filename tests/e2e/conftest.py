"""End-to-end: real worker processes against the emulator, each test its own deployment."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from order_processor.bootstrap import AwsClients, open_clients
from order_processor.config import QueueKind, Settings
from tests.e2e.harness import Harness
from tests.support import Clients, destroy

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
    settings = deployment_settings(aws_endpoint)
    Clients(settings).provisioner().apply(settings.resources())
    try:
        yield settings
    finally:
        destroy(settings)


@pytest.fixture
async def harness(deployment: Settings) -> AsyncIterator[Harness]:
    async with open_clients(deployment) as clients:
        yield await Harness.start(deployment, clients)


@pytest.fixture
async def aws(deployment: Settings) -> AsyncIterator[AwsClients]:
    async with open_clients(deployment) as clients:
        yield clients


@pytest.fixture
async def strict_harness(aws_endpoint: str) -> AsyncIterator[Harness]:
    """Commands go to the dead letters after two unforeseen failures, not five."""
    settings = deployment_settings(aws_endpoint, max_failures=2)
    Clients(settings).provisioner().apply(settings.resources())
    try:
        async with open_clients(settings) as clients:
            yield await Harness.start(settings, clients)
    finally:
        destroy(settings)
