"""What every DAO shares: attribute (de)serialisation, cursors, error translation, paging.

Numbers go to DynamoDB from Decimal and come back as Decimal (boto3's TypeSerializer
refuses floats outright, which is what we want). The scalars every write is made of
(strings, numbers, booleans) take a direct path, with boto3's own number rule; anything
else goes through boto3's TypeSerializer and TypeDeserializer: the same attributes, at a
fraction of the cost (a market order's transaction has about sixty).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from order_processor.awserrors import CONFLICT, cancellation_codes, error_code, is_transient
from order_processor.exceptions import OrderProcessorError, Reason, ServiceUnavailableException

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

T = TypeVar("T")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attribute(value: Any) -> dict[str, Any]:
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is Decimal or kind is int:
        return {"N": _number(value)}
    if kind is bool:
        return {"BOOL": value}
    plain = _plain(value)
    if plain is not value:  # an enum's value, a datetime's ISO text
        return to_attribute(plain)
    attribute: dict[str, Any] = _serializer.serialize(value)
    return attribute


def _number(value: Decimal | int) -> str:
    """boto3's rule: at most 38 significant digits, exactly (its context traps rounding)."""
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_attribute(v) for k, v in values.items() if v is not None}


def entity_item(model: BaseModel) -> dict[str, Any]:
    """A model's stored attributes: its fields, without derived (computed) ones."""
    return to_item(model.model_dump(exclude=set(type(model).model_computed_fields)))


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: from_attribute(v) for k, v in item.items()}


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    if len(attribute) == 1:
        ((kind, value),) = attribute.items()
        if kind == "S" or kind == "BOOL":
            return value
        if kind == "N":
            return DYNAMODB_CONTEXT.create_decimal(value)
    return _deserializer.deserialize(attribute)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        raise TypeError("floats never reach DynamoDB: use Decimal")
    return value


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class InvalidCursorError(OrderProcessorError):
    code = Reason.INVALID_CURSOR


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    if not key:
        return None
    plain = {k: next(iter(v.items())) for k, v in key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return {str(k): {str(kind): str(value)} for k, (kind, value) in plain.items()}
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        raise InvalidCursorError("the page cursor is not one this service issued") from exc


CONDITION_FAILED = "ConditionalCheckFailed"  # a cancellation reason in TransactWriteItems


def is_condition_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def old_item(exc: ClientError) -> dict[str, Any] | None:
    """The stored item a failed condition saw (ReturnValuesOnConditionCheckFailure=ALL_OLD)."""
    item = cast("Mapping[str, Any] | None", exc.response.get("Item"))
    return from_item(item) if item else None


def translate(exc: ClientError) -> Exception:
    """AWS errors at the boundary: transient ones become ServiceUnavailableException."""
    if not is_transient(exc):
        unchanged: Exception = exc
        return unchanged
    code = error_code(exc)
    if CONFLICT in cancellation_codes(exc):
        return ServiceUnavailableException(
            "a concurrent transaction touched the same items", aws_code=code
        )
    return ServiceUnavailableException(f"DynamoDB is unavailable: {code}", aws_code=code)


def cancellation_item(exc: ClientError, index: int) -> dict[str, Any] | None:
    reasons = exc.response.get("CancellationReasons", [])
    if index < len(reasons) and reasons[index].get("Item"):
        return from_item(reasons[index]["Item"])
    return None


async def query_page(
    client: DynamoDBClient,
    request: dict[str, Any],
    *,
    limit: int,
    cursor: str | None,
    key_attributes: tuple[str, ...],
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> Page[dict[str, Any]]:
    """One page of up to `limit` items of a Query, filled across DynamoDB pages when `keep`
    (a client-side filter) drops items; the cursor resumes after the last item returned."""
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be between 1 and 1000")
    items: list[dict[str, Any]] = []
    start = decode_cursor(cursor)
    while True:
        response = await _query(client, {**request, "Limit": limit}, start)
        for raw in response.get("Items", []):
            if keep is None or keep(from_item(raw)):
                items.append(raw)
            if len(items) == limit:
                last = {k: raw[k] for k in key_attributes}
                more = raw is not response["Items"][-1] or "LastEvaluatedKey" in response
                return Page([from_item(i) for i in items], encode_cursor(last) if more else None)
        start = response.get("LastEvaluatedKey")
        if not start:
            return Page([from_item(i) for i in items])


async def _query(
    client: DynamoDBClient, arguments: dict[str, Any], start: dict[str, Any] | None
) -> dict[str, Any]:
    if start:
        arguments["ExclusiveStartKey"] = start
    try:
        response = cast("dict[str, Any]", await client.query(**arguments))
    except ClientError as exc:
        if start and error_code(exc) == "ValidationException":
            raise InvalidCursorError("the page cursor does not fit this query") from exc
        raise translate(exc) from exc
    except BotoCoreError as exc:
        raise ServiceUnavailableException(f"DynamoDB is unreachable: {exc}") from exc
    return response


async def all_items(
    client: DynamoDBClient, operation: str, request: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Every item of a Query or a Scan, page after page, deserialised: the one paging loop
    (memory holds one page)."""
    arguments = dict(request)
    while True:
        page = await call(client, operation, **arguments)
        for raw in page.get("Items", []):
            yield from_item(raw)
        if "LastEvaluatedKey" not in page:
            return
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def all_pages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """Every item of a listing that pages with cursors (`fetch(cursor)`), page after page."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def call(client: DynamoDBClient, operation: str, **arguments: Any) -> dict[str, Any]:
    """One DynamoDB call; transient failures become ServiceUnavailableException, others
    (conditional check failures among them) stay ClientError for the DAO to interpret."""
    try:
        response: dict[str, Any] = await getattr(client, operation)(**arguments)
    except ClientError as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc
    except BotoCoreError as exc:
        if not is_transient(exc):  # a request botocore could not build: a bug, not AWS
            raise
        # Connection refused, reset or timed out: the endpoint may come back.
        raise ServiceUnavailableException(f"DynamoDB is unreachable: {exc}") from exc
    return response


async def get_item(
    client: DynamoDBClient, table: str, key: dict[str, Any]
) -> dict[str, Any] | None:
    """A strongly consistent read of one item, deserialised; None when it is absent."""
    response = await call(client, "get_item", TableName=table, Key=key, ConsistentRead=True)
    item = response.get("Item")
    return from_item(item) if item else None


def without_keys(item: dict[str, Any], *extra: str) -> dict[str, Any]:
    """An item's entity fields: the table keys and index attributes removed."""
    hidden = {"PK", "SK", *extra}
    return {k: v for k, v in item.items() if k not in hidden}
