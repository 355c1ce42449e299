"""The command contract: a JSON envelope on the commands queue.

`{schema, command_id, type, username, issued_at, auth, payload}`; decimals travel as
strings. One pydantic model per command type, joined by the `type` discriminator, so the
JSON Schema producers follow is generated from the same models the worker validates with.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from order_processor.domain.assets import AssetId
from order_processor.domain.base import Command, UtcDatetime, new_id, utc_now
from order_processor.domain.money import Price, UsdAmount
from order_processor.domain.orders import OrderCreate
from order_processor.domain.users import Username
from order_processor.exceptions import OrderProcessorError

COMMAND_SCHEMA: Literal["order-processor/command/v1"] = "order-processor/command/v1"
MAX_COMMAND_BYTES = 16 * 1024  # commands are small; anything bigger is refused unread
CommandId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CommandType(StrEnum):
    PLACE_ORDER = "PlaceOrder"
    CANCEL_ORDER = "CancelOrder"
    EXECUTE_ORDER = "ExecuteOrder"
    EXPIRE_ORDER = "ExpireOrder"
    DEPOSIT = "Deposit"
    WITHDRAW = "Withdraw"
    UPDATE_PRICE = "UpdatePrice"


# Commands only the system (role service or admin) may send.
SYSTEM_COMMANDS = frozenset(
    {CommandType.EXECUTE_ORDER, CommandType.EXPIRE_ORDER, CommandType.UPDATE_PRICE}
)


class PlaceOrderPayload(OrderCreate):
    order_id: CommandId = Field(default_factory=new_id)


class OrderReference(Command):
    order_id: CommandId


class FundsPayload(Command):
    amount: UsdAmount


class PricePayload(Command):
    asset_id: AssetId
    price: Price


class _Envelope(Command):
    schema_: Literal["order-processor/command/v1"] = Field(default=COMMAND_SCHEMA, alias="schema")
    command_id: CommandId = Field(default_factory=new_id)
    username: Username
    issued_at: UtcDatetime = Field(default_factory=utc_now)
    auth: str = Field(min_length=1, max_length=4096, repr=False)

    def body(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class PlaceOrder(_Envelope):
    type: Literal[CommandType.PLACE_ORDER] = CommandType.PLACE_ORDER
    payload: PlaceOrderPayload


class CancelOrder(_Envelope):
    type: Literal[CommandType.CANCEL_ORDER] = CommandType.CANCEL_ORDER
    payload: OrderReference


class ExecuteOrder(_Envelope):
    type: Literal[CommandType.EXECUTE_ORDER] = CommandType.EXECUTE_ORDER
    payload: OrderReference


class ExpireOrder(_Envelope):
    type: Literal[CommandType.EXPIRE_ORDER] = CommandType.EXPIRE_ORDER
    payload: OrderReference


class Deposit(_Envelope):
    type: Literal[CommandType.DEPOSIT] = CommandType.DEPOSIT
    payload: FundsPayload


class Withdraw(_Envelope):
    type: Literal[CommandType.WITHDRAW] = CommandType.WITHDRAW
    payload: FundsPayload


class UpdatePrice(_Envelope):
    type: Literal[CommandType.UPDATE_PRICE] = CommandType.UPDATE_PRICE
    payload: PricePayload


AnyCommand = Annotated[
    PlaceOrder | CancelOrder | ExecuteOrder | ExpireOrder | Deposit | Withdraw | UpdatePrice,
    Field(discriminator="type"),
]
COMMANDS: TypeAdapter[AnyCommand] = TypeAdapter(AnyCommand)


class CommandRejected(OrderProcessorError):
    """A command that can never succeed: answered with `command.rejected` and removed."""

    code = "REJECTED"

    def __init__(self, reason: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.reason = reason


def parse_command(body: str | bytes) -> AnyCommand:
    """Size first, then JSON, then the schema; each failure names what is wrong."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_COMMAND_BYTES:
        raise CommandRejected(
            "MESSAGE_TOO_LARGE", f"command is {len(raw)} bytes; the limit is {MAX_COMMAND_BYTES}"
        )
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CommandRejected("MALFORMED_JSON", f"body is not JSON: {exc}") from exc
    try:
        return COMMANDS.validate_python(document)
    except RecursionError as exc:
        raise CommandRejected("INVALID_COMMAND", "body is nested too deeply") from exc
    except ValidationError as exc:
        raise CommandRejected("INVALID_COMMAND", describe_errors(exc)) from exc


def describe_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        location = ".".join(str(p) for p in error["loc"] if not str(p)[0].isupper())
        message = error["msg"].removeprefix("Value error, ")
        field = str(error["loc"][-1]) if error["loc"] else ""
        # The money rules already name their field ("amount: must not be negative").
        if field and message.startswith(f"{field}: "):
            message = message.removeprefix(f"{field}: ")
        parts.append(f"{location or 'body'}: {message}")
    return "; ".join(parts)


def peek_identity(body: str | bytes) -> tuple[str | None, str | None]:
    """The (username, command_id) of a body that may not validate, for a rejection event."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    username, command_id = document.get("username"), document.get("command_id")
    return (
        username.lower() if isinstance(username, str) and len(username) <= 30 else None,
        command_id if isinstance(command_id, str) and len(command_id) <= 128 else None,
    )


def command_schema() -> dict[str, Any]:
    return COMMANDS.json_schema(by_alias=True)
