"""update_user without expected_version under contention: every change lands."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from order_processor.bootstrap import AwsClients, get_user_dao, open_clients
from order_processor.config import Settings
from order_processor.domain.users import UserCreate, UserUpdate
from order_processor.exceptions import StaleUpdateException
from order_processor.faultproxy import FaultPlan, fault_proxy
from order_processor.store.fence import fence_moved
from order_processor.store.users import UserDAO


async def registered(users: UserDAO, username: str, role: str = "customer") -> None:
    request = UserCreate.model_validate(
        {
            "username": username,
            "email": f"{username}@example.com",
            "first_name": "A",
            "last_name": "B",
            "role": role,
        }
    )
    await users.create_user(request, password_hash="h")


async def test_concurrent_changes_of_different_fields_without_a_version_all_apply(
    aws: AwsClients, username: str
) -> None:
    """Without expected_version the DAO promises to apply the change to its own fresh
    read. It retries three times at once, no backoff: with eight writers (a disable among
    them) most are refused StaleUpdateException although none asked for a version check,
    and the disable may be among the refused."""
    users = get_user_dao(aws)
    await registered(users, username)
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
            await registered(users, username)
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


async def test_a_versioned_change_whose_answer_was_lost_is_answered_as_applied(
    deployment: Settings, username: str
) -> None:
    """README (Profiles): `expected_version` refuses "a user changed since" the read the
    change was decided on; ("AWS as it fails", lost): "the retry meets its own write" and
    a write is "answered as applied". A change of one field is a single UpdateItem on the
    version read (no request token, unlike a transaction): its answer is lost, botocore's
    retry meets the version the write itself raised and is refused, and update_user
    raises StaleUpdateException for a change that is stored. The caller is told its
    decision was refused because the user changed, the change being its own."""
    assert deployment.endpoint_url is not None
    with fault_proxy(deployment.endpoint_url, FaultPlan.parse("")) as proxy:
        proxied = deployment.model_copy(update={"endpoint_url": proxy.endpoint})
        async with open_clients(proxied) as clients:
            users = get_user_dao(clients)
            await registered(users, username)
            read = await users.get_user_by_username(username)
            # Seed 1: the first UpdateItem's answer is lost, botocore's retry is answered.
            proxy.set_plan(FaultPlan.parse("lost.UpdateItem=0.5"), 1)
            proxy.reset_stats()
            try:
                outcome: object = await users.update_user(
                    username, UserUpdate(first_name="Zed"), expected_version=read.version
                )
            except StaleUpdateException as refused:
                outcome = refused
            lost = proxy.stats().injected("lost", "UpdateItem")
            proxy.set_plan(FaultPlan.parse(""), 0)
            stored = await users.get_user_by_username(username)

    assert lost == 1
    assert (stored.first_name, stored.version) == ("Zed", read.version + 1)  # it was applied
    assert not isinstance(outcome, StaleUpdateException), "refused as stale, yet stored"


# The fourth attacker's round.


class ReadThen:
    """The DynamoDB client of one API replica: its profile read answered, then `meanwhile`
    (another replica's write) lands before this replica writes."""

    def __init__(self, client: Any, meanwhile: Any) -> None:
        self._client, self._meanwhile = client, meanwhile

    async def get_item(self, **kwargs: Any) -> Any:
        answer = await self._client.get_item(**kwargs)
        if self._meanwhile is not None:
            pending, self._meanwhile = self._meanwhile, None
            await pending()
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


async def test_a_revocation_refused_by_another_replicas_change_of_the_same_tick_is_not_applied(
    aws: AwsClients, username: str
) -> None:
    """README (Profiles): a change decided on a read the user has changed since is refused
    StaleUpdateException; `_is_this_write` answers a condition failure "as applied" when the
    stored profile carries this write's version and updated_at. Two writers of one version
    (two API replicas, or two requests on one coarse clock: the same microsecond, or one
    15.6 ms tick of a Windows clock) compute the same (version + 1, updated_at). An admin
    revokes a user's admin role, decided on version 0; the user's own name change, decided
    on the same version in the same tick, lands first. The revocation is refused by the
    condition, the stored item is the other write's — same version, same time — and the
    admin is answered "applied": the role stays admin, the caller told it was revoked."""
    tick = datetime.now(UTC)
    users = replace(get_user_dao(aws), clock=lambda: tick)
    await registered(users, username, role="admin")
    read = await users.get_user_by_username(username)

    async def the_users_rename() -> None:
        await users.update_user(username, UserUpdate(first_name="Zed"), expected_version=0)

    admin = replace(users, client=cast(Any, ReadThen(aws.dynamodb, the_users_rename)))
    try:
        outcome: object = await admin.update_user(
            username, UserUpdate(role="customer"), expected_version=read.version
        )
    except StaleUpdateException as refused:
        outcome = refused
    stored = await users.get_user_by_username(username)

    assert stored.first_name == "Zed"  # the other write is the one stored
    assert stored.role == "admin"  # the revocation is not
    assert isinstance(outcome, StaleUpdateException), "answered as applied, yet not stored"
