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


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield configured
        return
    with running_emulator() as emulator:
        yield emulator.endpoint


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(aws_endpoint: str, prefix: str) -> Settings:
    return Settings(endpoint_url=aws_endpoint, prefix=prefix)


# The modules whose tests run for half a minute or more on two cores (`make test
# PYTEST_ARGS=--durations=40` names them), longest first: started first, so that xdist's
# last minutes are spent on short tests rather than waiting for one long test that
# started late.
LONG_FIRST = (
    "tests/e2e/test_cli_trading.py",
    "tests/chaos/test_chaos.py",
    "tests/e2e/test_hostile_input.py",
    "tests/e2e/test_crashes.py",
    "tests/e2e/test_lagging_indexes.py",
    "tests/e2e/test_recovery.py",
    "tests/e2e/test_demo.py",
    "tests/e2e/test_analytics.py",
    "tests/integration/store/test_group_commit_store.py",
    "tests/e2e/test_cli_output.py",
    "tests/e2e/test_outage.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def start(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=start)
