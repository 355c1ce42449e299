"""update_user without expected_version under contention: every change lands."""

from __future__ import annotations

import asyncio

from order_processor.bootstrap import AwsClients, get_user_dao
from order_processor.domain.users import UserCreate, UserUpdate


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
