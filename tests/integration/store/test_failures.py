"""The contract of `CommandFailures`, held by the DynamoDB adapter and by the in-memory fake
the handler's unit tests use: distinct attempts are counted per command, the same attempt
once, and one command's count is not another's."""

from __future__ import annotations

import pytest

from order_processor.bootstrap import AwsClients
from order_processor.domain.ports import CommandFailures
from order_processor.store.failures import DynamoCommandFailures
from tests.unit.fakes import MemoryFailures


@pytest.fixture(params=["dynamodb", "memory"])
def failures(request: pytest.FixtureRequest, aws: AwsClients) -> CommandFailures:
    if request.param == "memory":
        return MemoryFailures()
    return DynamoCommandFailures(aws.dynamodb, aws.resources.users_table)


async def test_distinct_attempts_count_and_a_repeated_one_does_not(
    failures: CommandFailures, username: str
) -> None:
    counts = [
        await failures.record(username, "c-1", "m-1:a"),
        await failures.record(username, "c-1", "m-1:a"),  # a retry whose answer was lost
        await failures.record(username, "c-1", "m-1:b"),
        await failures.record(username, "c-2", "m-2:a"),
        await failures.record(username + "x", "c-1", "m-3:a"),
        await failures.record(username, "c-1", "m-1:c"),
    ]

    assert counts == [1, 1, 2, 1, 1, 3]
