"""Users: profile, role, active flag."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field

from order_processor.domain.base import Command, Entity, UtcDatetime, utc_now


class UserRole(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


def normalise_username(value: str) -> str:
    return value.strip().lower()


Username = Annotated[
    str, Field(pattern=r"^[a-zA-Z0-9_]{6,30}$"), AfterValidator(normalise_username)
]
Email = Annotated[EmailStr, AfterValidator(str.lower)]
PersonName = Annotated[str, Field(min_length=1, max_length=100)]


class UserCreate(Command):
    username: Username
    email: Email
    first_name: PersonName
    last_name: PersonName
    role: UserRole = UserRole.CUSTOMER


class UserUpdate(Command):
    email: Email | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    role: UserRole | None = None
    is_active: bool | None = None


class User(Entity):
    username: Username
    email: Email
    first_name: PersonName
    last_name: PersonName
    role: UserRole = UserRole.CUSTOMER
    is_active: bool = True
    password_hash: str = Field(repr=False)
    # Raised by every profile change: an update decided on a read of another version is
    # refused (UserDAO.update_user), so a stale write never undoes a newer one (a disable).
    version: int = Field(default=0, ge=0)
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)

    def response(self) -> UserResponse:
        return UserResponse.model_validate(self.model_dump(exclude={"password_hash"}))


class UserResponse(Entity):
    """What leaves the service: never the password hash."""

    username: Username
    email: Email
    first_name: PersonName
    last_name: PersonName
    role: UserRole
    is_active: bool
    version: int
    created_at: UtcDatetime
    updated_at: UtcDatetime
