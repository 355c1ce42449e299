from __future__ import annotations

import asyncio

import bcrypt
import pytest

from order_processor.bootstrap import AwsClients, get_user_dao
from order_processor.domain.users import User, UserCreate, UserRole, UserUpdate
from order_processor.exceptions import (
    AccessDeniedException,
    EntityAlreadyExistsException,
    InvalidCredentialsException,
    StaleUpdateException,
    UserNotFoundException,
)
from order_processor.security import PasswordManager
from order_processor.store.users import UserDAO

PASSWORD = "Str0ng!pass"


def request(username: str, email: str | None = None) -> UserCreate:
    return UserCreate(
        username=username,
        email=email or f"{username}@example.com",
        first_name="Ada",
        last_name="Lovelace",
    )


async def test_created_user_is_found_by_username_and_by_email(
    aws: AwsClients, username: str
) -> None:
    users = get_user_dao(aws)

    created = await users.create_user(request(username.upper()), password_hash="h")

    by_name = await users.get_user_by_username(username.upper())
    by_email = await users.get_user_by_email(f"{username.upper()}@EXAMPLE.com")
    assert created.username == username
    assert by_name == created
    assert by_email.username == username
    assert by_name.email == f"{username}@example.com"
    assert by_name.role is UserRole.CUSTOMER
    assert by_name.is_active


async def test_a_username_is_never_overwritten(aws: AwsClients, username: str) -> None:
    users = get_user_dao(aws)
    await users.create_user(request(username), password_hash="first")

    with pytest.raises(EntityAlreadyExistsException, match="already exists"):
        await users.create_user(request(username, "other@example.com"), password_hash="second")

    assert (await users.get_user_by_username(username)).password_hash == "first"


async def test_an_email_belongs_to_one_user(aws: AwsClients, username: str) -> None:
    users = get_user_dao(aws)
    await users.create_user(request(username, "shared@example.org"), password_hash="h")

    with pytest.raises(EntityAlreadyExistsException, match="email shared@example.org"):
        await users.create_user(request(username + "x", "Shared@Example.org"), password_hash="h")

    with pytest.raises(UserNotFoundException):
        await users.get_user_by_username(username + "x")


async def test_two_concurrent_creates_of_one_user_exactly_one_wins(
    aws: AwsClients, username: str
) -> None:
    users = get_user_dao(aws)

    results = await asyncio.gather(
        users.create_user(request(username, "a-" + username + "@example.com"), "a"),
        users.create_user(request(username, "b-" + username + "@example.com"), "b"),
        return_exceptions=True,
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, EntityAlreadyExistsException)]
    assert len(winners) == 1
    assert len(losers) == 1
    stored = await users.get_user_by_username(username)
    assert stored.password_hash == winners[0].password_hash
    # The loser's email guard was never written: that address is still free.
    loser_email = ({"a", "b"} - {stored.password_hash}).pop() + "-" + username + "@example.com"
    await users.create_user(request(username + "z", loser_email), "c")


async def test_update_user_changes_fields_and_moves_the_email(
    aws: AwsClients, username: str
) -> None:
    users = get_user_dao(aws)
    await users.create_user(request(username), password_hash="h")

    updated = await users.update_user(
        username, UserUpdate(first_name="Grace", email=f"new-{username}@example.com")
    )

    assert updated.first_name == "Grace"
    stored = await users.get_user_by_username(username)
    assert stored.email == f"new-{username}@example.com"
    assert stored.updated_at > stored.created_at
    assert (await users.get_user_by_email(f"new-{username}@example.com")).username == username
    with pytest.raises(UserNotFoundException):
        await users.get_user_by_email(f"{username}@example.com")
    # The old address is free again.
    await users.create_user(request(username + "o", f"{username}@example.com"), "h")


async def test_update_user_to_a_taken_email_is_refused(aws: AwsClients, username: str) -> None:
    users = get_user_dao(aws)
    await users.create_user(request(username), password_hash="h")
    await users.create_user(request(username + "b"), password_hash="h")

    with pytest.raises(EntityAlreadyExistsException):
        await users.update_user(username, UserUpdate(email=f"{username}b@example.com"))

    assert (await users.get_user_by_username(username)).email == f"{username}@example.com"


async def test_update_of_an_unknown_user_is_not_found(aws: AwsClients, username: str) -> None:
    with pytest.raises(UserNotFoundException):
        await get_user_dao(aws).update_user(username, UserUpdate(first_name="X"))


async def test_authentication_does_not_tell_unknown_users_from_wrong_passwords(
    aws: AwsClients, username: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = get_user_dao(aws)
    passwords = PasswordManager()
    stored_hash = await passwords.hash_password(PASSWORD)
    await users.create_user(request(username), stored_hash)
    checked: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def recording_checkpw(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", recording_checkpw)

    user = await users.authenticate_user(username, PASSWORD, passwords)
    errors = []
    for name, password in [(username, "Wr0ng!pass"), (username + "nobody", PASSWORD)]:
        with pytest.raises(InvalidCredentialsException) as raised:
            await users.authenticate_user(name, password, passwords)
        errors.append(str(raised.value))

    assert user.username == username
    assert errors[0] == errors[1] == "invalid username or password"
    # The unknown user costs one bcrypt check at cost 12, as a wrong password does.
    assert checked[:2] == [stored_hash.encode()] * 2
    assert len(checked) == 3
    assert checked[2].startswith(b"$2b$12$")
    assert checked[2] != stored_hash.encode()


async def test_a_disabled_user_cannot_log_in(aws: AwsClients, username: str) -> None:
    users = get_user_dao(aws)
    passwords = PasswordManager()
    await users.create_user(request(username), await passwords.hash_password(PASSWORD))
    await users.update_user(username, UserUpdate(is_active=False))

    with pytest.raises(AccessDeniedException, match="disabled"):
        await users.authenticate_user(username, PASSWORD, passwords)


async def test_a_profile_change_decided_before_a_disable_cannot_re_enable_the_user(
    aws: AwsClients, username: str
) -> None:
    """The attack: read a user, disable it, then write the earlier read back with a new
    first name. The write was decided on a stale read: refused, and the user stays off."""
    users = get_user_dao(aws)
    await users.create_user(request(username), password_hash="h")
    earlier = await users.get_user_by_username(username)
    await users.update_user(username, UserUpdate(is_active=False))

    stale = UserUpdate(
        email=earlier.email,
        first_name="Mallory",
        last_name=earlier.last_name,
        role=earlier.role,
        is_active=earlier.is_active,
    )
    with pytest.raises(StaleUpdateException):
        await users.update_user(username, stale, expected_version=earlier.version)

    stored = await users.get_user_by_username(username)
    assert (stored.is_active, stored.first_name) == (False, "Ada")
    assert stored.version == earlier.version + 1


async def test_a_change_of_one_field_leaves_a_disable_committed_meanwhile_in_place(
    aws: AwsClients, username: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving forced: the update reads the user, a disable commits, then the
    update writes. It changes the first name only and the user stays disabled."""
    users = get_user_dao(aws)
    await users.create_user(request(username), password_hash="h")
    read = UserDAO.get_user_by_username
    disabled: list[bool] = []

    async def read_then_disable(dao: UserDAO, name: str) -> User:
        user = await read(dao, name)
        if not disabled:
            disabled.append(True)
            await get_user_dao(aws).update_user(name, UserUpdate(is_active=False))
        return user

    monkeypatch.setattr(UserDAO, "get_user_by_username", read_then_disable)
    updated = await users.update_user(username, UserUpdate(first_name="Grace"))
    monkeypatch.undo()

    stored = await users.get_user_by_username(username)
    assert (stored.is_active, stored.first_name) == (False, "Grace")
    assert updated == stored
