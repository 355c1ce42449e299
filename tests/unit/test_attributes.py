"""DynamoDB attributes: the direct path for scalars writes and reads exactly what boto3's
TypeSerializer and TypeDeserializer do, its refusals included."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, DecimalException
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from order_processor.domain.orders import OrderStatus
from order_processor.store.dynamo import from_item, to_attribute, to_item


def stable_id(value: Any) -> str:
    """A set's repr follows the hash seed, which differs between xdist's workers: sorted."""
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(map(repr, value))) + "}"
    return repr(value)


VALUES: list[Any] = [
    "",
    "ORDER#abc",
    "ünïcode",
    0,
    -7,
    10**37,
    Decimal("0"),
    Decimal("-0"),
    Decimal("10.00"),
    Decimal("0.00000001"),
    Decimal("1E+5"),
    Decimal("6.3850"),
    Decimal("-12345678901234.12345678"),
    True,
    False,
    None,
    b"raw",
    ["a", Decimal(1), True],
    {"nested": {"deeper": Decimal("1.5")}},
    {"a", "b"},
    {Decimal(1), Decimal(2)},
]


@pytest.mark.parametrize("value", VALUES, ids=stable_id)
def test_an_attribute_is_what_boto3_writes(value: Any) -> None:
    assert to_attribute(value) == TypeSerializer().serialize(value)


@pytest.mark.parametrize("value", VALUES, ids=stable_id)
def test_an_attribute_reads_back_as_boto3_reads_it(value: Any) -> None:
    attribute = TypeSerializer().serialize(value)
    expected = TypeDeserializer().deserialize(attribute)
    read = from_item({"value": attribute})["value"]
    assert read == expected
    assert type(read) is type(expected)
    if isinstance(expected, Decimal):
        assert str(read) == str(expected)  # the same digits and exponent


def test_enums_and_datetimes_are_written_as_their_text() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    assert to_item({"status": OrderStatus.QUEUED, "at": at, "gone": None}) == {
        "status": {"S": "QUEUED"},
        "at": {"S": "2026-01-02T03:04:05.000678+00:00"},
    }


@pytest.mark.parametrize(
    "value", [10**38 + 1, Decimal("1.000000000000000000000000000000000000001")], ids=str
)
def test_a_number_dynamodb_cannot_hold_exactly_is_refused_as_boto3_refuses_it(
    value: Any,
) -> None:
    with pytest.raises(DecimalException) as ours:
        to_attribute(value)
    with pytest.raises(DecimalException) as boto3s:
        TypeSerializer().serialize(value)
    assert type(ours.value) is type(boto3s.value)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), 1.5])
def test_nan_infinity_and_floats_never_reach_dynamodb(value: Any) -> None:
    with pytest.raises(TypeError):
        to_attribute(value)


def test_binary_reads_back_as_boto3_binary() -> None:
    assert from_item({"b": {"B": b"raw"}})["b"] == Binary(b"raw")
