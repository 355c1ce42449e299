"""What `rates` prints for a fresh and a stale rate, and what `fx` refuses as usage."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from order_processor.cli import build_parser
from order_processor.cli.rates import fed_currencies
from order_processor.config import Settings
from order_processor.domain.fx import ExchangeRate
from order_processor.ops.rates import RateRow

AS_OF = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age_seconds", "stale", "line"),
    [
        (42, False, "GBP  1.2920216886 USD  as of 2026-12-04T12:00:00+00:00  42 s old"),
        (
            300_639,
            True,
            "GBP  1.2920216886 USD  as of 2026-12-04T12:00:00+00:00  3 d 11 h old"
            "  stale (older than 300 s)",
        ),
        (5_400, False, "GBP  1.2920216886 USD  as of 2026-12-04T12:00:00+00:00  90 min old"),
        (90_000, False, "GBP  1.2920216886 USD  as of 2026-12-04T12:00:00+00:00  25 h 0 min old"),
    ],
)
def test_a_rate_is_one_line_with_its_age_and_whether_it_is_stale(
    age_seconds: int, stale: bool, line: str
) -> None:
    rate = ExchangeRate(currency="GBP", rate="1.2920216886", as_of=AS_OF)

    assert RateRow(rate, age_seconds, stale).line(300) == line


def test_fx_feeds_the_enabled_currencies_but_usd_unless_told() -> None:
    settings = Settings(currencies="USD,EUR,JPY")

    assert fed_currencies(None, settings) == ["EUR", "JPY"]
    assert fed_currencies("jpy", settings) == ["JPY"]
    for refused in ("USD", "GBP", "EURO"):
        with pytest.raises(argparse.ArgumentTypeError, match="--currencies"):
            fed_currencies(refused, settings)


def test_fx_reads_only_the_ecb_as_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["fx", "--source", "ecb:rates.xml"])
    assert args.source == "rates.xml"
    for source in ("coingecko:x", "ecb:"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["fx", "--source", source])
    assert "use ecb:PATH or ecb:URL" in capsys.readouterr().err
