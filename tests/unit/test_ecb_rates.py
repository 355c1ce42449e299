"""The ECB's reference rates (`fx --source ecb:...`): a recorded daily file read exactly
into rates against USD dated by the file; hostile XML refused before anything in it is
expanded; bad rates skipped with their reason, a file without USD refused."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from order_processor.demo.ecb import MAX_BYTES, EcbError, read_document, reference_rates

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "eurofxref-daily.xml"
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">'
)


def daily(*cubes: str, day: str = "2026-12-04") -> bytes:
    body = "".join(cubes)
    return f"{HEAD}<Cube><Cube time='{day}'>{body}</Cube></Cube></gesmes:Envelope>".encode()


def per_usd(dollars: str, per_eur: str) -> Decimal:
    return (Decimal(dollars) / Decimal(per_eur)).quantize(Decimal("1E-10"), ROUND_HALF_EVEN)


def test_the_recorded_file_gives_dollars_per_unit_dated_by_the_file() -> None:
    rates = reference_rates(RECORDED.read_bytes())

    assert rates.as_of == datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert rates.rates == {
        "EUR": Decimal("1.0842000000"),
        "JPY": per_usd("1.0842", "162.87"),
        "CZK": per_usd("1.0842", "24.891"),
        "GBP": per_usd("1.0842", "0.83915"),
        "SEK": per_usd("1.0842", "11.2785"),
        "CHF": per_usd("1.0842", "0.9412"),
        "KRW": per_usd("1.0842", "1549.72"),
    }
    assert rates.rates["JPY"] == Decimal("0.0066568429")
    assert rates.skipped == {}


def test_of_several_days_the_newest_is_read() -> None:
    history = (
        f"{HEAD}<Cube><Cube time='2026-12-03'><Cube currency='USD' rate='1.0700'/></Cube>"
        "<Cube time='2026-12-04'><Cube currency='USD' rate='1.0842'/></Cube></Cube>"
        "</gesmes:Envelope>"
    ).encode()

    rates = reference_rates(history)

    assert (rates.as_of.date().isoformat(), rates.rates) == (
        "2026-12-04",
        {"EUR": Decimal("1.0842000000")},
    )


@pytest.mark.parametrize(
    "rate", ["0", "-1.5", "0.0000", "abc", "NaN", "Infinity", "1.12345678901", ""]
)
def test_a_currency_without_a_positive_rate_is_skipped_with_its_reason(rate: str) -> None:
    rates = reference_rates(
        daily("<Cube currency='USD' rate='1.0842'/>", f"<Cube currency='GBP' rate='{rate}'/>")
    )

    assert rates.rates == {"EUR": Decimal("1.0842000000")}
    assert list(rates.skipped) == ["GBP"]
    assert rates.skipped["GBP"].startswith("GBP per EUR: ")


def test_a_currency_too_weak_for_ten_places_or_unknown_is_skipped() -> None:
    rates = reference_rates(
        daily(
            "<Cube currency='USD' rate='1'/>",
            "<Cube currency='VND' rate='100000000000'/>",
            "<Cube currency='XYZ' rate='2'/>",
        )
    )

    assert rates.rates == {"EUR": Decimal("1.0000000000")}
    assert rates.skipped["VND"] == "1 VND is worth less than 1E-10 USD"
    assert "not an ISO 4217 currency code" in rates.skipped["XYZ"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (daily("<Cube currency='GBP' rate='0.84'/>"), "the file has no USD rate"),
        (daily("<Cube currency='USD' rate='0'/>"), "must be greater than zero"),
        (daily("<Cube currency='USD' rate='-1.08'/>"), "must not be negative"),
        (f"{HEAD}<Cube/></gesmes:Envelope>".encode(), "no <Cube time=...>"),
        (daily(day="04/12/2026"), "is not a date"),
        (
            daily("<Cube currency='USD' rate='1.08'/><Cube currency='USD' rate='1.09'/>"),
            "USD is quoted twice",
        ),
        (b"<Cube time='2026-12-04'><Cube currency='USD' rate='1.08'/></Cube>", "no <Cube time"),
        (b'{"USD": 1.08}', "not well-formed XML"),
    ],
)
def test_a_file_it_cannot_read_rates_against_usd_from_is_refused(
    document: bytes, message: str
) -> None:
    with pytest.raises(EcbError, match=message.replace("(", r"\(").replace(".", r"\.")):
        reference_rates(document)


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Cube xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref" time="&lol3;"/>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY rate SYSTEM "file:///etc/passwd">]>
<Cube xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube time="2026-12-04">
<Cube currency="USD" rate="&rate;"/></Cube></Cube>"""
BARE_DOCTYPE = b'<?xml version="1.0"?><!DOCTYPE Cube SYSTEM "http://example.com/ecb.dtd"><Cube/>'


@pytest.mark.parametrize("document", [LAUGHS, EXTERNAL, BARE_DOCTYPE], ids=["laughs", "ext", "dtd"])
def test_a_doctype_is_refused_before_any_entity_is_read(document: bytes) -> None:
    with pytest.raises(EcbError, match="a DOCTYPE or entity declaration is refused"):
        reference_rates(document)


def test_an_undeclared_entity_is_not_well_formed() -> None:
    with pytest.raises(EcbError, match="not well-formed XML: undefined entity"):
        reference_rates(daily("<Cube currency='USD' rate='&rate;'/>"))


def test_a_document_larger_than_any_rates_file_is_refused(tmp_path: Path) -> None:
    large = tmp_path / "large.xml"
    large.write_bytes(daily("<!--" + "x" * MAX_BYTES + "-->"))

    with pytest.raises(EcbError, match="larger than"):
        read_document(str(large))
    with pytest.raises(EcbError, match="larger than"):
        reference_rates(large.read_bytes())


def test_a_source_is_a_file_path_or_an_http_url() -> None:
    assert read_document(str(RECORDED)) == RECORDED.read_bytes()
    with pytest.raises(EcbError, match="an http\\(s\\) URL or a file path"):
        read_document("ftp://ecb.europa.eu/eurofxref-daily.xml")
