from __future__ import annotations

from collections.abc import Iterator

import pytest

from order_processor.config import Settings
from tests.support import Clients, destroy


@pytest.fixture
def clients(settings: Settings) -> Clients:
    return Clients(settings)


@pytest.fixture
def provisioned(settings: Settings, clients: Clients) -> Iterator[Settings]:
    """A fully provisioned deployment under the test's own prefix, deleted afterwards."""
    clients.provisioner().apply(settings.resources())
    try:
        yield settings
    finally:
        destroy(settings)
