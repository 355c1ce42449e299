"""`order-processor worker KIND` and `python -m workers.KIND`: each kind takes its own
options only, and an option that overrides a setting is checked by the settings."""

from __future__ import annotations

import pytest

from order_processor.bootstrap.arguments import KINDS, worker_parser
from order_processor.bootstrap.programs import run_worker
from order_processor.cli import build_parser
from order_processor.config import Settings

SWEEPER_ONLY = (["--interval", "5"], ["--once"], ["--now", "2030-01-01T00:00:00+00:00"])


@pytest.mark.parametrize("option", SWEEPER_ONLY, ids=lambda option: option[0])
@pytest.mark.parametrize("kind", ["orders", "limit-matcher", "analytics"])
def test_a_worker_refuses_the_sweepers_options(
    kind: str, option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as cli:
        build_parser().parse_args(["worker", kind, *option])
    with pytest.raises(SystemExit) as module:
        worker_parser(kind).parse_args(option)

    assert cli.value.code == module.value.code == 2
    assert f"unrecognized arguments: {option[0]}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option", [["--burst"], ["--concurrency", "4"], ["--rematch-interval", "1"]]
)
def test_the_sweeper_refuses_the_consumers_options(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "expiry-sweeper", *option])

    assert f"unrecognized arguments: {option[0]}" in capsys.readouterr().err


def test_each_kind_takes_its_own_options() -> None:
    parser = build_parser()
    sweeper = parser.parse_args(["worker", "expiry-sweeper", "--interval", "5", "--once"])
    matcher = parser.parse_args(["worker", "limit-matcher", "--burst", "--rematch-interval", "0"])
    analytics = parser.parse_args(["worker", "analytics", "--concurrency", "4"])

    assert (sweeper.kind, sweeper.interval, sweeper.once) == ("expiry-sweeper", 5.0, True)
    assert (matcher.kind, matcher.burst, matcher.rematch_interval) == ("limit-matcher", True, 0.0)
    assert (analytics.kind, analytics.concurrency) == ("analytics", 4)
    assert sorted(KINDS) == sorted(parser.parse_args(["worker", kind]).kind for kind in KINDS)


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--concurrency", "0"], "--concurrency=0: Input should be greater than or equal to 1"),
        (
            ["--concurrency", "1001"],
            "--concurrency=1001: Input should be less than or equal to 1000",
        ),
        (["--metrics-port", "65536"], "--metrics-port=65536: Input should be less than or equal"),
    ],
    ids=["no_messages_in_flight", "more_in_flight_than_allowed", "a_port_beyond_65535"],
)
def test_an_option_outside_its_settings_bounds_is_refused_with_the_settings_message(
    option: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = worker_parser("orders").parse_args(option)

    code = run_worker("orders", args, Settings(jwt_secret="s" * 32))

    assert code == 2
    assert f"order-processor worker orders: invalid configuration: {said}" in (
        capsys.readouterr().err
    )
