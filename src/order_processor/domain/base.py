"""Shared pieces of the entities: model bases, ids, time."""

from __future__ import annotations

import itertools
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


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
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise ValueError("timestamps must fall between the years 1 and 9999 in UTC") from exc


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]


# Every id (command, order, transaction) is at most 128 characters of this alphabet. Order
# ids are shorter, so that the records derived from them (`<order_id>#<kind>`, kinds of at
# most 27 characters) fit the same limit by construction; "#" cannot occur in a command id,
# so a derived id never meets a deposit's id (which is its command id).
ID_MAX_LENGTH = 128
ORDER_ID_MAX_LENGTH = 100
RECORD_KIND_MAX_LENGTH = ID_MAX_LENGTH - ORDER_ID_MAX_LENGTH - 1
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
CommandId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
OrderId = Annotated[str, Field(min_length=1, max_length=ORDER_ID_MAX_LENGTH, pattern=ID_PATTERN)]


def record_id(order_id: str, kind: str) -> str:
    """The id of a record an order's saga writes; fits ID_MAX_LENGTH for every order id."""
    if not 1 <= len(kind) <= RECORD_KIND_MAX_LENGTH or len(order_id) > ORDER_ID_MAX_LENGTH:
        raise ValueError(f"no record id for an order id of {len(order_id)} and kind {kind!r}")
    return f"{order_id}#{kind}"


_sequence = itertools.count()


def new_id() -> str:
    """A unique id that sorts by creation time: 12 hex digits of milliseconds since the
    epoch, 4 of a per-process counter (ids made in one millisecond keep their order),
    then 64 random bits (unlike a timestamp alone, two ids never collide)."""
    millis = time.time_ns() // 1_000_000
    return f"{millis:012x}{next(_sequence) % 0x10000:04x}{secrets.token_hex(8)}"
