from __future__ import annotations

from collections.abc import Iterator

import pytest

from order_processor.config import Settings
from order_processor.faultproxy import FaultProxyHandle, fault_proxy
from tests.support import Clients, deployed


@pytest.fixture
def clients(settings: Settings) -> Clients:
    return Clients(settings)


@pytest.fixture
def provisioned(settings: Settings) -> Iterator[Settings]:
    """A fully provisioned deployment under the test's own prefix, deleted afterwards."""
    with deployed(settings):
        yield settings


@pytest.fixture(scope="module")
def proxy(aws_endpoint: str) -> Iterator[FaultProxyHandle]:
    """One fault proxy process in front of the emulator for a test module; each test sets
    its own plan (tests/integration/proxied.py `faults`)."""
    with fault_proxy(aws_endpoint) as handle:
        yield handle
