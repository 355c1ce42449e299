"""update_user without expected_version under contention: every change lands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from order_processor.bootstrap import AwsClients, get_user_dao, open_clients
from order_processor.config import Settings
from order_processor.domain.users import UserCreate, UserUpdate
from order_processor.faultproxy import FaultPlan, fault_proxy
from order_processor.store.fence import fence_moved


async def test_concurrent_changes_of_different_fields_without_a_version_all_apply(
    aws: AwsClients, username: str
) -> None:
    """Without expected_version the DAO promises to apply the change to its own fresh
    read. It retries three times at once, no backoff: with eight writers (a disable among
    them) most are refused StaleUpdateException although none asked for a version check,
    and the disable may be among the refused."""
    users = get_user_dao(aws)
    await users.create_user(
        UserCreate(
            username=username, email=f"{username}@example.com", first_name="A", last_name="B"
        ),
        password_hash="h",
    )
    changes = [UserUpdate(first_name=f"Name{i}") for i in range(7)] + [UserUpdate(is_active=False)]

    outcomes = await asyncio.gather(
        *(users.update_user(username, change) for change in changes), return_exceptions=True
    )

    assert [type(o).__name__ for o in outcomes] == ["User"] * len(changes)
    assert not (await users.get_user_by_username(username)).is_active


async def test_a_disable_that_meets_a_trade_in_flight_on_the_fence_is_tried_again(
    deployment: Settings, username: str
) -> None:
    """On DynamoDB a transaction on the user's fence item in flight cancels the disable's
    own (TransactionConflict) rather than queueing it: the DAO reads again and writes
    again, and the disable lands. The fault proxy holds each transaction 300 ms."""
    assert deployment.endpoint_url is not None
    plan = FaultPlan.parse("conflict=on,hold-ms=300")
    with fault_proxy(deployment.endpoint_url, plan) as proxy:
        proxied = deployment.model_copy(update={"endpoint_url": proxy.endpoint})
        async with open_clients(proxied) as clients:
            users = get_user_dao(clients)
            await users.create_user(
                UserCreate(
                    username=username,
                    email=f"{username}@example.com",
                    first_name="A",
                    last_name="B",
                ),
                password_hash="h",
            )
            trade = fence_moved(clients.resources.users_table, username, datetime.now(UTC))
            in_flight = asyncio.create_task(
                clients.dynamodb.transact_write_items(TransactItems=[{"Update": cast(Any, trade)}])
            )
            await asyncio.sleep(0.1)  # the trade holds the fence item now
            disabled = await users.update_user(username, UserUpdate(is_active=False))
            await in_flight
            stored = await users.get_user_by_username(username)
        conflicts = proxy.stats().injected("conflict")

    assert conflicts >= 1
    assert (disabled.is_active, stored.is_active, stored.version) == (False, False, 1)
