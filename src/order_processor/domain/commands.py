"""The command contract: a JSON envelope on the commands queue.

`{schema, command_id, type, username, issued_at, auth, payload}`; decimals travel as
strings. One pydantic model per command type, joined by the `type` discriminator, so the
JSON Schema producers follow is generated from the same models the worker validates with.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from order_processor.domain.assets import AssetId
from order_processor.domain.base import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    Command,
    CommandId,
    OrderId,
    UtcDatetime,
    utc_now,
)
from order_processor.domain.currencies import BASE_CURRENCY, CurrencyCode, amount_in
from order_processor.domain.money import CashAmount, Price, Rate
from order_processor.domain.orders import OrderCreate
from order_processor.domain.users import Username
from order_processor.exceptions import CommandRejected, Reason

COMMAND_SCHEMA: Literal["order-processor/command/v1"] = "order-processor/command/v1"
MAX_COMMAND_BYTES = 16 * 1024  # commands are small; anything bigger is refused unread


class CommandType(StrEnum):
    PLACE_ORDER = "PlaceOrder"
    CANCEL_ORDER = "CancelOrder"
    EXECUTE_ORDER = "ExecuteOrder"
    EXPIRE_ORDER = "ExpireOrder"
    RESUME_ORDER = "ResumeOrder"
    DEPOSIT = "Deposit"
    WITHDRAW = "Withdraw"
    UPDATE_PRICE = "UpdatePrice"
    UPDATE_RATE = "UpdateRate"
    CONVERT = "Convert"


class ServiceName(StrEnum):
    """The subjects of service tokens: each service signs its own commands."""

    PAYMENTS = "payments"
    LIMIT_MATCHER = "limit-matcher"
    EXPIRY_SWEEPER = "expiry-sweeper"
    PRICE_FEED = "price-feed"


# Who may send what. A customer sends their own orders, cancels and withdrawals (the
# token's subject is the command's user); money enters from outside the exchange, so a
# Deposit comes from the payments service; each other service sends only its own types.
# An admin token may send any command but a customer's.
CUSTOMER_COMMANDS = frozenset(
    {CommandType.PLACE_ORDER, CommandType.CANCEL_ORDER, CommandType.WITHDRAW, CommandType.CONVERT}
)
SERVICE_COMMANDS: dict[str, frozenset[CommandType]] = {
    ServiceName.PAYMENTS: frozenset({CommandType.DEPOSIT}),
    ServiceName.LIMIT_MATCHER: frozenset({CommandType.EXECUTE_ORDER}),
    ServiceName.EXPIRY_SWEEPER: frozenset({CommandType.EXPIRE_ORDER, CommandType.RESUME_ORDER}),
    ServiceName.PRICE_FEED: frozenset({CommandType.UPDATE_PRICE, CommandType.UPDATE_RATE}),
}


class PlaceOrderPayload(OrderCreate):
    order_id: OrderId  # the order's idempotency key: required on the wire


class OrderReference(Command):
    order_id: OrderId


class ExecutePayload(OrderReference):
    asset_id: AssetId | None = None  # the order's asset: read with it, saving a round trip


class FundsPayload(Command):
    """An amount of a currency (USD when none is named), to its minor unit."""

    currency: CurrencyCode = BASE_CURRENCY
    amount: CashAmount

    @model_validator(mode="after")
    def _amount_in_currency(self) -> FundsPayload:
        object.__setattr__(self, "amount", _amount_of(self.amount, self.currency, "amount"))
        return self


class ConvertPayload(Command):
    """Sell `amount` of `sell` for what it buys of `buy` at the rate of the moment."""

    sell: CurrencyCode
    buy: CurrencyCode
    amount: CashAmount

    @model_validator(mode="after")
    def _a_conversion(self) -> ConvertPayload:
        if self.sell == self.buy:
            raise ValueError(f"buy: {self.buy} is the currency sold; convert to another")
        object.__setattr__(self, "amount", _amount_of(self.amount, self.sell, "amount"))
        return self


class RatePayload(Command):
    """A currency's rate: how many base-currency units one unit is worth."""

    currency: CurrencyCode
    rate: Rate

    @field_validator("currency")
    @classmethod
    def _not_the_base(cls, value: str) -> str:
        if value == BASE_CURRENCY:
            raise ValueError(f"{BASE_CURRENCY} is the base currency: its rate is 1")
        return value


def _amount_of(amount: object, currency: str, field: str) -> Any:
    try:
        return amount_in(amount, currency, field=field)
    except ValueError as exc:
        raise ValueError(f"{exc} for {currency}") from exc


class PricePayload(Command):
    asset_id: AssetId
    price: Price


class _Envelope(Command):
    schema_: Literal["order-processor/command/v1"] = Field(default=COMMAND_SCHEMA, alias="schema")
    command_id: CommandId  # the idempotency key: required, or a redelivery would run again
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
    payload: ExecutePayload


class ExpireOrder(_Envelope):
    type: Literal[CommandType.EXPIRE_ORDER] = CommandType.EXPIRE_ORDER
    payload: OrderReference


class Deposit(_Envelope):
    type: Literal[CommandType.DEPOSIT] = CommandType.DEPOSIT
    payload: FundsPayload


class Withdraw(_Envelope):
    type: Literal[CommandType.WITHDRAW] = CommandType.WITHDRAW
    payload: FundsPayload


class ResumeOrder(_Envelope):
    """From the recovery job: finish an order a lost message left PENDING or PROCESSING."""

    type: Literal[CommandType.RESUME_ORDER] = CommandType.RESUME_ORDER
    payload: OrderReference


class UpdatePrice(_Envelope):
    type: Literal[CommandType.UPDATE_PRICE] = CommandType.UPDATE_PRICE
    payload: PricePayload


class UpdateRate(_Envelope):
    """From the price feed's service: a currency's rate, observed at `issued_at`."""

    type: Literal[CommandType.UPDATE_RATE] = CommandType.UPDATE_RATE
    payload: RatePayload


class Convert(_Envelope):
    """A customer's conversion of one currency into another (domain.fx)."""

    type: Literal[CommandType.CONVERT] = CommandType.CONVERT
    # Its two records' ids are the command id and a suffix ('#sold', '#bought'): the
    # command id is as short as an order id, so that they fit.
    command_id: OrderId
    payload: ConvertPayload


AnyCommand = Annotated[
    PlaceOrder
    | CancelOrder
    | ExecuteOrder
    | ExpireOrder
    | ResumeOrder
    | Deposit
    | Withdraw
    | UpdatePrice
    | UpdateRate
    | Convert,
    Field(discriminator="type"),
]
COMMANDS: TypeAdapter[AnyCommand] = TypeAdapter(AnyCommand)


def command_digest(command: AnyCommand) -> str:
    """The `cmd` claim of a token minted for `command`: the digest of the message it
    travels as (`document_digest` of its body)."""
    digest: str = document_digest(json.loads(command.body()))
    return digest


def derived_id(kind: str, *parts: str) -> str:
    """The id of a command derived from others (an ExecuteOrder from the order and the
    update that triggered it, an ExpireOrder from the order and the minute): the same
    parts give the same id, so a repeat is the same command, idempotent by construction."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
    return f"{kind}-{digest}"


def document_digest(document: Mapping[str, Any]) -> str:
    """What a token minted for one command carries (`cmd`): the SHA-256 of the message as
    sent, all of it but `auth`, as canonical JSON (keys sorted at every level, no
    whitespace, non-ASCII escaped; a command carries no numbers, decimals travel as
    strings). Computed from the received document, not from what it parses to, so any
    textual change is refused, and a producer in any language can compute it. A token
    lifted from a message (in the DLQ, say) then signs nothing but that same message,
    whose command runs once (its id is its idempotency key)."""
    signed = {key: value for key, value in document.items() if key != "auth"}
    canonical = json.dumps(signed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_document(body: str | bytes) -> dict[str, Any]:
    """Size first, then JSON, then an object; each failure names what is wrong."""
    raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
    if len(raw) > MAX_COMMAND_BYTES:
        raise CommandRejected(
            Reason.MESSAGE_TOO_LARGE,
            f"command is {len(raw)} bytes; the limit is {MAX_COMMAND_BYTES}",
        )
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CommandRejected(Reason.MALFORMED_JSON, "body is not JSON") from exc
    if not isinstance(document, dict):
        raise CommandRejected(Reason.INVALID_COMMAND, "body: the command must be a JSON object")
    return document


def validate_command(document: dict[str, Any]) -> AnyCommand:
    """The schema, with the money rules; anything it cannot accept is INVALID_COMMAND.
    `issued_at` is required on the wire (it orders price updates and starts an order's
    latency): a default taken here would date each delivery of one message anew."""
    if "issued_at" not in document:
        raise CommandRejected(Reason.INVALID_COMMAND, "issued_at: Field required")
    try:
        return COMMANDS.validate_python(document)
    except RecursionError as exc:
        raise CommandRejected(Reason.INVALID_COMMAND, "body is nested too deeply") from exc
    except ValidationError as exc:
        raise CommandRejected(Reason.INVALID_COMMAND, describe_errors(exc)) from exc
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise CommandRejected(Reason.INVALID_COMMAND, "body: a value is out of range") from exc


def parse_command(body: str | bytes) -> AnyCommand:
    """An unauthenticated parse (tools, tests); the worker admits through `Admission`."""
    return validate_command(read_document(body))


_COMMAND_TAGS = frozenset(CommandType)  # the discriminator's step in an error's location


def describe_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        location = ".".join(str(p) for p in error["loc"] if str(p) not in _COMMAND_TAGS)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "union_tag_invalid":  # pydantic's text quotes the sender's value
            location, message = "type", f"must be one of {', '.join(CommandType)}"
        field = str(error["loc"][-1]) if error["loc"] else ""
        # The money rules already name their field ("amount: must not be negative").
        if field and message.startswith(f"{field}: "):
            message = message.removeprefix(f"{field}: ")
        parts.append(f"{location or 'body'}: {message}")
    return "; ".join(parts)


_USERNAME = re.compile(r"^[a-zA-Z0-9_]{6,30}$")
_ID = re.compile(ID_PATTERN)


def peek_identity(body: str | bytes) -> tuple[str | None, str | None]:
    """The (username, command_id) a body claims, unverified and sanitised (each kept only
    when it is a well-formed username or id): for grouping, listings and a rejection's
    clearly-named `claimed_*` fields, never for deciding anything."""
    try:
        document = read_document(body)  # as admission reads it (a BOM is allowed)
    except CommandRejected:
        return None, None
    username, command_id = document.get("username"), document.get("command_id")
    return (
        username.lower()
        if isinstance(username, str) and _well_formed(_USERNAME, username)
        else None,
        command_id if isinstance(command_id, str) and _well_formed(_ID, command_id) else None,
    )


def well_formed_id(value: object) -> str | None:
    """`value` if it is a well-formed command id, else None."""
    return value if isinstance(value, str) and _well_formed(_ID, value) else None


def _well_formed(pattern: re.Pattern[str], value: str) -> bool:
    return len(value) <= ID_MAX_LENGTH and bool(pattern.fullmatch(value))


def command_schema() -> dict[str, Any]:
    """The JSON Schema producers follow: `issued_at` required in every command, as
    `validate_command` requires it (the models default it for Python producers)."""
    schema = COMMANDS.json_schema(by_alias=True)
    for name, definition in schema.get("$defs", {}).items():
        if name in {kind.value for kind in CommandType}:
            definition["required"] = sorted({*definition.get("required", []), "issued_at"})
    return schema
