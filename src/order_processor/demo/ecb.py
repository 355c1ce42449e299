"""The ECB's euro foreign exchange reference rates (`eurofxref-daily.xml`) as rates
against the base currency, for `order-processor fx --source ecb:...`.

The file quotes every currency per 1 EUR (`<Cube currency='USD' rate='1.0842'/>`: one
euro buys 1.0842 dollars). Against USD, EUR is rate(USD) and any other currency
rate(USD) / rate(CUR), rounded half-even to RATE_PLACES. A rate that is not a positive
number of at most RATE_PLACES places, or that rounds to nothing, skips its currency (the
reason is kept); a file without a USD rate or a reference date is refused (EcbError).

The rates are dated by the file, not by the reader's clock: `as_of` is the reference
date at 12:00 UTC, no later than the ECB's daily concertation (14:10 Frankfurt time:
12:10 or 13:10 UTC). Re-dating them "now" would make a day-old rate pass the age check
(`ORDER_PROCESSOR_FX_MAX_AGE_SECONDS`) that exists to refuse old rates; an operator who
feeds the ECB's rates sets that age to cover the ECB's publishing days instead (the
README's "Rates feed").

Parsing: expat, without a DTD. A DOCTYPE is refused before anything in it is read, so
no entity can be declared (the "billion laughs", external entities); an undeclared
entity is an expat error; the document is at most MAX_BYTES.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path
from typing import Any, NoReturn
from xml.parsers import expat

from order_processor.domain.currencies import BASE_CURRENCY, currency_code
from order_processor.domain.money import RATE_PLACES, parse_decimal, step

EUROFXREF = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"
ECB_BASE = "EUR"  # what the file quotes every currency in
MAX_BYTES = 1_000_000
REFERENCE_TIME = time(12, 0, tzinfo=UTC)
_EXACT = Context(prec=60)
_RATE_STEP = step(RATE_PLACES)
_CUBE = f"{EUROFXREF} Cube"


class EcbError(ValueError):
    """A document that is not the ECB's reference rates, or that this reader refuses."""


@dataclass(frozen=True)
class ReferenceRates:
    as_of: datetime
    rates: dict[str, Decimal]  # USD per unit of each currency the file quotes
    skipped: dict[str, str] = field(default_factory=dict)  # currency -> why it has no rate


def reference_rates(document: bytes) -> ReferenceRates:
    """The newest day of an ECB rates document (the daily file has one; the 90-day
    history many) as rates against the base currency."""
    day, per_euro = _newest_day(_cubes(document))
    rates: dict[str, Decimal] = {}
    skipped: dict[str, str] = {}
    checked: dict[str, Decimal] = {}
    for written, text in per_euro.items():
        try:
            code = currency_code(written)
            if code == ECB_BASE:
                raise ValueError(f"{ECB_BASE} is what the file quotes in")
            checked[code] = parse_decimal(text, field=f"{code} per EUR", places=RATE_PLACES)
        except ValueError as exc:
            skipped[written] = str(exc)
    dollars = checked.pop(BASE_CURRENCY, None)
    if dollars is None:
        reason = skipped.get(BASE_CURRENCY, "the file has no USD rate")
        raise EcbError(f"no rate against {BASE_CURRENCY} can be derived: {reason}")
    rates[ECB_BASE] = dollars
    for code, per_eur in checked.items():
        rate = _EXACT.divide(dollars, per_eur).quantize(_RATE_STEP, ROUND_HALF_EVEN, _EXACT)
        if rate > 0:
            rates[code] = rate
        else:
            skipped[code] = f"1 {code} is worth less than {_RATE_STEP} {BASE_CURRENCY}"
    return ReferenceRates(datetime.combine(day, REFERENCE_TIME), rates, skipped)


def read_document(source: str, timeout: float = 10) -> bytes:
    """The document at `source`: an http(s) URL or a file path, at most MAX_BYTES."""
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=timeout) as response:
            document: bytes = response.read(MAX_BYTES + 1)
    elif "://" in source:
        raise EcbError(f"{source[:80]!r}: an http(s) URL or a file path")
    else:
        with Path(source).open("rb") as file:
            document = file.read(MAX_BYTES + 1)
    if len(document) > MAX_BYTES:
        raise EcbError(f"{source[:80]}: larger than {MAX_BYTES} bytes: not the ECB's rates")
    return document


def _cubes(document: bytes) -> list[dict[str, str]]:
    """The attributes of every ECB `Cube` element, in document order."""
    if len(document) > MAX_BYTES:
        raise EcbError(f"larger than {MAX_BYTES} bytes: not the ECB's rates")
    cubes: list[dict[str, str]] = []
    parser = expat.ParserCreate(namespace_separator=" ")

    def refuse(*_: Any) -> NoReturn:
        raise EcbError("a DOCTYPE or entity declaration is refused: the ECB's file has none")

    def start(name: str, attributes: dict[str, str]) -> None:
        if name == _CUBE:
            cubes.append(attributes)

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    try:
        parser.Parse(document, True)
    except expat.ExpatError as exc:
        raise EcbError(f"not well-formed XML: {exc}") from exc
    return cubes


def _newest_day(cubes: list[dict[str, str]]) -> tuple[date, dict[str, str]]:
    """The rates (currency -> rate per EUR, as written) of the newest `Cube time=`."""
    days: dict[date, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for cube in cubes:
        if "time" in cube:
            try:
                day = date.fromisoformat(cube["time"])
            except ValueError as exc:
                raise EcbError(f"time={cube['time'][:16]!r} is not a date") from exc
            current = days.setdefault(day, {})
        elif "currency" in cube and current is not None:
            code = cube["currency"].strip().upper()[:16]
            if code in current:
                raise EcbError(f"{code} is quoted twice on one day")
            current[code] = cube.get("rate", "")
    if not days:
        raise EcbError("no <Cube time=...> of reference rates: not the ECB's rates")
    newest = max(days)
    return newest, days[newest]
