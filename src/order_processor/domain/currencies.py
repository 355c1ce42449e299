"""Currencies: ISO 4217 codes and their minor units, from Babel's CLDR data.

USD is the base currency: limits are configured in it, rates are quoted against it and
a command or an item without a currency means it. Which currencies a deployment accepts
is configuration (`ORDER_PROCESSOR_CURRENCIES`); which currencies exist, and how many
decimal places each has (JPY none, KWD three), is not: it comes from CLDR, never typed
here. Currencies with more than three minor units (CLF, UYW: units of account, not cash)
are refused.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from typing import Annotated

from babel.numbers import get_currency_precision, list_currencies
from pydantic import BeforeValidator, ValidationInfo, WithJsonSchema

from order_processor.domain.money import parse_decimal, step

BASE_CURRENCY = "USD"
DEFAULT_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF")
MAX_MINOR_UNITS = 3
_CODE = re.compile(r"^[A-Z]{3}$")


@cache
def _iso_codes() -> frozenset[str]:
    return frozenset(list_currencies())


def currency_code(value: object, field: str = "currency") -> str:
    """`value` as an ISO 4217 code this program can hold ("eur" is EUR), or ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a currency code, got {type(value).__name__}")
    # Only ASCII is uppercased: a long s (U+017F) uppercases to S, so 'u\u017fd' would be USD.
    code = value.strip().upper() if value.isascii() else value
    if not _CODE.match(code) or code not in _iso_codes():
        raise ValueError(f"{field}: {value[:16]!r} is not an ISO 4217 currency code")
    if minor_units(code) > MAX_MINOR_UNITS:
        raise ValueError(f"{field}: {code} is a unit of account, not a currency")
    return code


@cache
def minor_units(code: str) -> int:
    """The decimal places of `code`'s amounts (ISO 4217, as CLDR records it)."""
    return int(get_currency_precision(code))


def minor_unit(code: str) -> Decimal:
    """The smallest amount of `code`: 0.01 USD, 1 JPY, 0.001 KWD."""
    return step(minor_units(code))


def amount_in(
    value: object, code: str, *, field: str = "amount", allow_zero: bool = False
) -> Decimal:
    """`value` as an amount of `code`: the money rules, with no more places than the
    currency's minor unit, padded to exactly them (5 EUR is 5.00, 5 JPY is 5)."""
    return parse_decimal(value, field=field, places=minor_units(code), allow_zero=allow_zero)


def _validated_code(value: object, info: ValidationInfo) -> str:
    return currency_code(value, info.field_name or "currency")


def in_minor_units(value: Decimal, code: str, field: str = "amount") -> Decimal:
    """An amount already checked by the money rules, to exactly `code`'s minor unit;
    ValueError if it has more places than that."""
    places = minor_units(code)
    quantised = value.quantize(step(places))
    if quantised != value:
        raise ValueError(f"{field}: {value} has more than {places} decimal places for {code}")
    return quantised


CurrencyCode = Annotated[
    str,
    BeforeValidator(_validated_code),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217"}),
]
