"""Money rules: Decimal only, checked and quantised at the boundary.

Inputs (command payloads, CLI arguments, DAO arguments) pass through `parse_decimal`:
strings, ints and Decimals are accepted; floats are refused because they cannot carry an
exact cent; NaN, infinities, negative zero, negatives, values of 10^15 or more and values
with more decimal places than allowed are refused with a message naming the field. An
accepted value is quantised to its exact number of places ("5" USD becomes 5.00).

Rounding of computed amounts (quantity x price) favours the house, by a documented rule:
a buyer pays the cost rounded *up* to the cent, a seller receives proceeds rounded *down*
to the cent. Valuations (portfolio market value) round half-even; they move no money.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationInfo, WithJsonSchema

USD_PLACES = 2
PRICE_PLACES = 8
RATE_PLACES = 10  # an exchange rate: JPY per KWD and KWD per JPY alike keep 7+ digits
MAX_QUANTITY_PLACES = 18
DEFAULT_QUANTITY_PLACES = 8
MAX_INTEGER_DIGITS = 15  # amounts stay below 10^15: far inside DynamoDB's 38 digits
# What every amount, price and rate stays below; a computed one (at a feed's rate) too.
CEILING = Decimal(10) ** MAX_INTEGER_DIGITS

CENT = Decimal("0.01")
_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})?$")
# Exact products: 15 integer digits + 18 places times 15 + 8 stays well under 60 digits.
# Handed to each operation rather than entered with `localcontext` (the same result, at a
# fraction of the cost, for the two dozen amounts an order validates).
_EXACT = Context(prec=60)


def step(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def parse_decimal(
    value: object, *, field: str, places: int, allow_zero: bool = False, pad: bool = True
) -> Decimal:
    """Check `value` against the money rules; `pad` quantises to exactly `places` places
    (USD, prices), otherwise the value keeps only the places it needs, in fixed-point form
    (quantities, whose precision is the asset's)."""
    number = _to_decimal(value, field)
    if not number.is_finite():
        raise ValueError(f"{field}: {value!s} is not a finite number")
    if number.is_zero() and number.is_signed():
        raise ValueError(f"{field}: negative zero is not an amount")
    if number < 0:
        raise ValueError(f"{field}: must not be negative (got {number})")
    if number.is_zero() and not allow_zero:
        raise ValueError(f"{field}: must be greater than zero")
    if not number.is_zero() and number.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"{field}: {number} is too large (limit 10^{MAX_INTEGER_DIGITS})")
    quantised = number.quantize(_step(places), context=_EXACT)
    if quantised != number:
        raise ValueError(f"{field}: {number} has more than {places} decimal places")
    if pad:
        return quantised
    # A quantity without trailing zeros ("6.3850" is 6.385): the form DynamoDB gives back,
    # so an event re-published from the stored order spells it as the first one did, and
    # no zeros ("1." and forty of them) carry more digits than DynamoDB's 38.
    number = quantised.normalize(context=_EXACT)  # normalize() rounds to the precision
    return number if _exponent(number) <= 0 else number.quantize(_STEPS[0])


_STEPS = {places: step(places) for places in range(MAX_QUANTITY_PLACES + 1)}


def _step(places: int) -> Decimal:
    return _STEPS.get(places) or step(places)


def _exponent(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def parse_signed(value: object, *, field: str, places: int, pad: bool = True) -> Decimal:
    """The same rules for an amount that may be negative (an adjustment, a delta)."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_decimal(value.strip()[1:], field=field, places=places, pad=pad)
    if isinstance(value, Decimal | int) and not isinstance(value, bool) and value < 0:
        return -parse_decimal(-value, field=field, places=places, pad=pad)
    return parse_decimal(value, field=field, places=places, pad=pad)


def _to_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool | float):
        raise ValueError(f"{field}: send decimals as strings, not {type(value).__name__}s")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower().lstrip("+-") in {"nan", "snan", "inf", "infinity"}:
            raise ValueError(f"{field}: {value} is not a finite number")
        if not _NUMBER.match(text):
            raise ValueError(f"{field}: not a decimal number")
        try:
            return Decimal(text)
        except ArithmeticError as exc:  # an exponent beyond Decimal's range: 1e99999999999999999999
            raise ValueError(f"{field}: out of range") from exc
    raise ValueError(f"{field}: expected a decimal string, got {type(value).__name__}")


def check_places(value: Decimal, *, field: str, places: int) -> Decimal:
    """Re-check an already parsed quantity against a stricter precision (an asset's)."""
    return parse_decimal(value, field=field, places=places, allow_zero=value.is_zero(), pad=False)


def exact_total(values: Iterable[Decimal]) -> Decimal:
    """A sum without rounding: quantities carry up to 33 digits (15 + 18 places), more
    than the default context's 28."""
    total = Decimal(0)
    for value in values:
        total = _EXACT.add(total, value)
    return total


def signed(value: Decimal, sign: int) -> Decimal:
    """`value` times +1, -1 or 0, without rounding (unary minus rounds to the context)."""
    if sign == 0:
        return Decimal((0, (0,), _exponent(value)))  # zero in the value's places
    return value if sign > 0 else value.copy_negate()


def order_value(quantity: Decimal, price: Decimal) -> Decimal:
    """quantity x price, exactly: what the order-value limit is checked against."""
    return _EXACT.multiply(quantity, price)


def buy_cost(quantity: Decimal, price: Decimal, unit: Decimal = CENT) -> Decimal:
    """What a buyer pays: the exact product rounded up to the minor `unit` of the price's
    currency (a cent, a yen)."""
    return _EXACT.multiply(quantity, price).quantize(unit, ROUND_CEILING, _EXACT)


def sell_proceeds(quantity: Decimal, price: Decimal, unit: Decimal = CENT) -> Decimal:
    """What a seller receives: the exact product rounded down to the minor `unit`."""
    return _EXACT.multiply(quantity, price).quantize(unit, ROUND_FLOOR, _EXACT)


def percent_value(value: Decimal) -> Decimal:
    """A percentage from its value alone, to two places at least (0.50, 0.125), however
    it was written: DynamoDB keeps 0.50 as 0.5, and what is read back must read as what
    was first announced."""
    exact = value.normalize()
    if exact.as_tuple().exponent < -2:  # type: ignore[operator]
        return exact
    return value.quantize(CENT)


def market_value(quantity: Decimal, price: Decimal, unit: Decimal = CENT) -> Decimal:
    """A valuation (no money moves): half-even to the price currency's minor `unit`."""
    return _EXACT.multiply(quantity, price).quantize(unit, ROUND_HALF_EVEN, _EXACT)


def _field_validator(places: int, allow_zero: bool, pad: bool | None = True) -> BeforeValidator:
    def validate(value: Any, info: ValidationInfo) -> Decimal:
        name = info.field_name or "value"
        if pad is None:  # checked, kept as given
            parse_decimal(value, field=name, places=places, allow_zero=allow_zero, pad=False)
            return _to_decimal(value, name) + 0
        return parse_decimal(value, field=name, places=places, allow_zero=allow_zero, pad=pad)

    return BeforeValidator(validate)


def _schema(places: int) -> WithJsonSchema:
    pattern = rf"^[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{places}}})?$"
    return WithJsonSchema({"type": "string", "pattern": pattern})


# On the wire a decimal is a fixed-point string ("0.0000001", never "1E-7").
_FIXED_POINT = PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json")

UsdAmount = Annotated[
    Decimal, _field_validator(USD_PLACES, False), _schema(USD_PLACES), _FIXED_POINT
]
UsdBalance = Annotated[
    Decimal, _field_validator(USD_PLACES, True), _schema(USD_PLACES), _FIXED_POINT
]
Price = Annotated[
    Decimal, _field_validator(PRICE_PLACES, False), _schema(PRICE_PLACES), _FIXED_POINT
]
Quantity = Annotated[
    Decimal,
    _field_validator(MAX_QUANTITY_PLACES, False, pad=False),
    _schema(MAX_QUANTITY_PLACES),
    _FIXED_POINT,
]
# An amount in some currency, at most three places as given ("5.00" stays 5.00, 15000 stays
# 15000): a model that knows its currency quantises it to the minor unit.
CashBalance = Annotated[Decimal, _field_validator(3, True, pad=None), _schema(3), _FIXED_POINT]
# An amount of a currency not yet known: at most ISO 4217's three places, checked against
# its currency's minor unit once that is known (domain.currencies.amount_in).
CashAmount = Annotated[Decimal, _field_validator(3, False, pad=False), _schema(3), _FIXED_POINT]
# An exchange rate: more than 0, 10 places.
Rate = Annotated[Decimal, _field_validator(RATE_PLACES, False), _schema(RATE_PLACES), _FIXED_POINT]
# A percentage of a price (a trailing stop's trail): more than 0, less than 100, 2 places.
Percent = Annotated[Decimal, _field_validator(2, False), _schema(2), _FIXED_POINT, Field(lt=100)]
QuantityBalance = Annotated[
    Decimal,
    _field_validator(MAX_QUANTITY_PLACES, True, pad=False),
    _schema(MAX_QUANTITY_PLACES),
    _FIXED_POINT,
]


def deepest_dip(deltas: Iterable[Decimal]) -> Decimal:
    """How far below its start a balance goes as the deltas apply in order (0 if never):
    what it must hold for every one of them to find enough."""
    running, lowest = Decimal(0), Decimal(0)
    for delta in deltas:
        running = exact_total([running, delta])
        lowest = min(lowest, running)
    return lowest.copy_negate() if lowest < 0 else Decimal(0)
