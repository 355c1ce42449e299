"""Shared pieces of the entities: model bases, ids, time."""

from __future__ import annotations

import itertools
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Entity(BaseModel):
    """A stored entity: immutable; changes produce a new value."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Command(BaseModel):
    """Input from outside (API, CLI, message): unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]


_sequence = itertools.count()


def new_id() -> str:
    """A unique id that sorts by creation time: 12 hex digits of milliseconds since the
    epoch, 4 of a per-process counter (ids made in one millisecond keep their order),
    then 64 random bits (unlike a timestamp alone, two ids never collide)."""
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{next(_sequence) % 0x10000:04x}{secrets.token_hex(8)}"
