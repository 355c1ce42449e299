"""DAO tests: one provisioned deployment per module (tests use their own usernames and
ids, so they do not see each other), aioboto3 clients opened per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from order_processor.bootstrap import AwsClients, open_clients
from order_processor.config import Settings
from tests.support import deployed


@pytest.fixture(scope="module")
def deployment(aws_endpoint: str) -> Iterator[Settings]:
    settings = Settings(endpoint_url=aws_endpoint, prefix=f"s{uuid.uuid4().hex[:12]}")
    with deployed(settings):
        yield settings


@pytest.fixture
async def aws(deployment: Settings) -> AsyncIterator[AwsClients]:
    async with open_clients(deployment) as clients:
        yield clients


@pytest.fixture
def username() -> str:
    return f"user_{uuid.uuid4().hex[:12]}"
