"""UserDAO: profiles with unique usernames and unique emails."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from order_processor.awserrors import cancellation_codes
from order_processor.domain.base import utc_now
from order_processor.domain.users import User, UserCreate, UserUpdate, normalise_username
from order_processor.exceptions import (
    AccessDeniedException,
    EntityAlreadyExistsException,
    InvalidCredentialsException,
    ServiceUnavailableException,
    StaleUpdateException,
    UserNotFoundException,
)
from order_processor.store import keys
from order_processor.store.dynamo import (
    CONDITION_FAILED,
    call,
    cancellation_item,
    entity_item,
    from_item,
    get_item,
    is_condition_failure,
    old_item,
    to_attribute,
    to_item,
    without_keys,
)
from order_processor.store.fence import fence_moved

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


UPDATE_ATTEMPTS = 10


class PasswordVerifier(Protocol):
    async def verify_password(self, password: str, password_hash: str | None) -> bool: ...


@dataclass(frozen=True)
class UserDAO:
    client: DynamoDBClient
    table: str
    clock: Callable[[], datetime] = utc_now

    async def create_user(self, request: UserCreate, password_hash: str) -> User:
        """Never overwrites: the profile and an email guard item are written in one
        transaction, each conditional on its absence, so a username and an email are
        each taken once even by concurrent creates. The user's USD balance (zero) opens in
        the same transaction: no user exists without one, whose orders no write could
        settle and whose deposits none could credit. A balance already there is kept."""
        now = self.clock()
        user = User(
            **request.model_dump(), password_hash=password_hash, created_at=now, updated_at=now
        )
        profile = {**keys.user_key(user.username), **entity_item(user)}
        guard = {**keys.email_key(user.email), **to_item({"username": user.username})}
        try:
            await call(
                self.client,
                "transact_write_items",
                TransactItems=[
                    self._put_new(profile),
                    self._put_new(guard),
                    {"Update": self._open_balance(user.username, now)},
                ],
            )
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if codes[:1] == [CONDITION_FAILED]:
                raise EntityAlreadyExistsException(f"user {user.username} already exists") from exc
            if codes[1:2] == [CONDITION_FAILED]:
                raise EntityAlreadyExistsException(
                    f"email {user.email} is already registered"
                ) from exc
            raise
        return user

    def _open_balance(self, username: str, now: datetime) -> dict[str, Any]:
        zero = to_attribute(Decimal("0.00"))
        return {
            "TableName": self.table,
            "Key": keys.balance_key(username),
            "UpdateExpression": "SET username = :username, "
            "available = if_not_exists(available, :zero), held = if_not_exists(held, :zero), "
            "updated_at = if_not_exists(updated_at, :now)",
            "ExpressionAttributeValues": {
                ":username": to_attribute(username),
                ":zero": zero,
                ":now": to_attribute(now),
            },
        }

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    async def get_user_by_username(self, username: str) -> User:
        name = normalise_username(username)
        item = await get_item(self.client, self.table, keys.user_key(name))
        if item is None:
            raise UserNotFoundException(f"user {name} not found", username=name)
        return User.model_validate(without_keys(item))

    async def get_user_by_email(self, email: str) -> User:
        # EmailIndex is eventually consistent on AWS: a user created a moment ago may
        # not be found by email yet (uniqueness itself is enforced by the guard item).
        response = await call(
            self.client,
            "query",
            TableName=self.table,
            IndexName="EmailIndex",
            KeyConditionExpression="email = :email",
            ExpressionAttributeValues={":email": to_attribute(email.strip().lower())},
        )
        items = response.get("Items", [])
        if not items:
            raise UserNotFoundException(f"no user with email {email}")
        return _user(items[0])

    async def update_user(
        self, username: str, update: UserUpdate, *, expected_version: int | None = None
    ) -> User:
        """Changes exactly the fields `update` names, and raises the user's `version`.

        `expected_version` is the version of the read the change was decided on: if the
        user has changed since, the write is refused (StaleUpdateException) instead of
        putting back what that read saw (an `is_active=True` read before a disable).
        Without it, the change is applied to the user as read here; a change committed
        between that read and the write is met by reading again, up to a few times."""
        for attempt in range(UPDATE_ATTEMPTS):
            current = await self.get_user_by_username(username)
            if expected_version is not None and current.version != expected_version:
                raise _stale(current)
            try:
                return await self._apply(current, update)
            except StaleUpdateException:
                if expected_version is not None:
                    raise
            except ServiceUnavailableException:
                # A saga's transaction on the user's fence item in flight (DynamoDB
                # cancels rather than queues), or throttling: read again, try again.
                if attempt == UPDATE_ATTEMPTS - 1:
                    raise
            # Racing writers of one profile take turns, not the same instant again.
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))  # noqa: S311
        raise _stale(await self.get_user_by_username(username))

    async def _apply(self, current: User, update: UserUpdate) -> User:
        changes = update.model_dump(exclude_none=True)
        if not changes:
            return current
        updated = current.model_copy(
            update={**changes, "updated_at": self.clock(), "version": current.version + 1}
        )
        profile_update = self._profile_update(current, updated, [*changes, "updated_at"])
        items: list[dict[str, Any]] = [{"Update": profile_update}]
        if updated.email != current.email:
            new_guard = {**keys.email_key(updated.email), **to_item({"username": updated.username})}
            old_guard = {"TableName": self.table, "Key": keys.email_key(current.email)}
            items += [{"Delete": old_guard}, self._put_new(new_guard)]
        if updated.is_active != current.is_active:
            # Disabling (or enabling) moves the user's fence: a saga write decided from a
            # read before this change is refused and decided again, seeing it.
            items.append({"Update": fence_moved(self.table, current.username, updated.updated_at)})
        try:
            if len(items) == 1:
                await call(self.client, "update_item", **profile_update)
            else:
                await call(self.client, "transact_write_items", TransactItems=items)
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if is_condition_failure(exc) or codes[:1] == [CONDITION_FAILED]:
                stored = old_item(exc) if len(items) == 1 else cancellation_item(exc, 0)
                if _is_this_write(stored, updated, changes):
                    # Its answer was lost and botocore's retry met it: applied, once.
                    return updated
                raise _stale(current) from exc
            if codes[2:3] == [CONDITION_FAILED] and updated.email != current.email:
                raise EntityAlreadyExistsException(
                    f"email {updated.email} is already registered"
                ) from exc
            raise
        return updated

    def _profile_update(self, current: User, updated: User, fields: list[str]) -> dict[str, Any]:
        values = updated.model_dump(include={*fields, "version"})
        read = to_attribute(current.version)
        return {
            "TableName": self.table,
            "Key": keys.user_key(current.username),
            "UpdateExpression": "SET " + ", ".join(f"#{f} = :{f}" for f in values),
            # On the version read: a write decided on an older read (a racing email change,
            # an enable read before a disable) is refused. Profiles written before versions
            # existed have none: version 0.
            "ConditionExpression": "attribute_exists(PK) AND "
            + (
                "(attribute_not_exists(#version) OR #version = :read)"
                if current.version == 0
                else "#version = :read"
            ),
            "ExpressionAttributeNames": {f"#{f}": f for f in values},
            "ExpressionAttributeValues": {
                **{f":{k}": to_attribute(v) for k, v in values.items()},
                ":read": read,
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    async def authenticate_user(
        self, username: str, password: str, passwords: PasswordVerifier
    ) -> User:
        """The same error, after the same bcrypt work, for an unknown user and a wrong
        password, so the answer does not tell which usernames exist."""
        try:
            user: User | None = await self.get_user_by_username(username)
        except UserNotFoundException:
            user = None
        matches = await passwords.verify_password(password, user.password_hash if user else None)
        if user is None or not matches:
            raise InvalidCredentialsException("invalid username or password")
        if not user.is_active:
            raise AccessDeniedException(f"user {user.username} is disabled")
        return user


def _is_this_write(stored: dict[str, Any] | None, updated: User, changed: dict[str, Any]) -> bool:
    """The stored profile is the one this update wrote: its version, its time and every
    field it set (another writer of the same version in the same tick set others)."""
    if stored is None:
        return False
    found = User.model_validate(without_keys(stored))
    fields = ["version", "updated_at", *changed]
    return found.model_dump(include=set(fields)) == updated.model_dump(include=set(fields))


def _stale(current: User) -> StaleUpdateException:
    return StaleUpdateException(
        f"user {current.username} changed since the read this update was decided on",
        username=current.username,
    )


def _user(item: dict[str, Any]) -> User:
    return User.model_validate(without_keys(from_item(item)))
