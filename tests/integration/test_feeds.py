"""Price feeds: the market-data adapter against recorded responses served over HTTP from
this machine (the ECB's daily file too), the random walk, and `order-processor feed` and
`fx` end to end."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from order_processor.config import Settings
from order_processor.demo.ecb import read_document, reference_rates
from order_processor.demo.feeds import TYPICAL_RATES, coingecko_prices, random_walk
from tests.support import Clients, cli_env, run_cli

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "coins_markets.json"
ECB_RECORDED = RECORDED.with_name("eurofxref-daily.xml")
ECB_PATH = "/stats/eurofxref/eurofxref-daily.xml"


class RecordedMarkets(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == ECB_PATH:
            body, kind = ECB_RECORDED.read_bytes(), "text/xml"
        elif url.path == "/api/v3/coins/markets":
            RecordedMarkets.requests.append(parse_qs(url.query))
            body, kind = RECORDED.read_bytes(), "application/json"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def market_api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordedMarkets)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v3"
    finally:
        server.shutdown()
        server.server_close()


def test_recorded_market_prices_are_read_exactly(market_api: str) -> None:
    RecordedMarkets.requests.clear()

    prices = coingecko_prices(
        market_api,
        {"BTC": "bitcoin", "ETH": "ethereum", "DOGE": "dogecoin", "DEAD": "delisted-coin"},
    )

    # Never through a float: 91234.123456789 keeps its digits up to the 8 price places.
    assert prices == {
        "BTC": Decimal("91234.12345679"),
        "ETH": Decimal("3021.07000000"),
        "DOGE": Decimal("0.12345679"),
    }
    assert RecordedMarkets.requests[0]["vs_currency"] == ["usd"]
    assert RecordedMarkets.requests[0]["ids"] == ["bitcoin,ethereum,dogecoin,delisted-coin"]


def test_the_ecb_file_is_read_over_http_as_from_disk(market_api: str) -> None:
    served = read_document(market_api.replace("/api/v3", ECB_PATH))

    assert reference_rates(served) == reference_rates(ECB_RECORDED.read_bytes())
    assert reference_rates(served).rates["GBP"] == Decimal("1.2920216886")


def test_an_unknown_endpoint_raises_an_http_error(market_api: str) -> None:
    with pytest.raises(Exception, match="404"):
        coingecko_prices(market_api.replace("/api/v3", "/nowhere"), {"BTC": "bitcoin"})


def test_the_random_walk_is_reproducible_and_stays_positive() -> None:
    start = {"BTC": Decimal("100"), "PENNY": Decimal("0.00000002")}

    first = [p for _, p in zip(range(50), random_walk(start, seed=7), strict=False)]
    again = [p for _, p in zip(range(50), random_walk(start, seed=7), strict=False)]

    assert first == again
    assert all(p["PENNY"] > 0 for p in first)
    assert all(abs(b["BTC"] / a["BTC"] - 1) <= Decimal("0.0101") for a, b in pairwise(first))
    assert all(p["BTC"] == p["BTC"].quantize(Decimal("0.00000001")) for p in first)


def test_the_feed_command_sends_price_updates(
    provisioned: Settings, clients: Clients, market_api: str
) -> None:
    env = {**cli_env(provisioned), "ORDER_PROCESSOR_JWT_SECRET": "f" * 32}
    for asset_id in ("BTC", "ETH"):
        result = run_cli("assets", "add", asset_id, "--name", asset_id, "--price", "10", env=env)
        assert result.returncode == 0, result.stderr

    fed = run_cli(
        "feed",
        "--assets",
        "BTC,ETH",
        "--coins",
        "bitcoin,ethereum",
        "--source",
        market_api,
        "--ticks",
        "2",
        "--interval",
        "10ms",
        env=env,
    )
    walked = run_cli(
        "feed", "--assets", "BTC", "--ticks", "3", "--interval", "0", "--seed", "1", env=env
    )
    rates = run_cli(
        "fx", "--currencies", "EUR,jpy", "--ticks", "2", "--interval", "0", "--seed", "1", env=env
    )

    assert fed.returncode == 0, fed.stderr
    assert [json.loads(line) for line in fed.stdout.splitlines()] == [
        {"BTC": "91234.12345679", "ETH": "3021.07000000"}
    ] * 2
    assert walked.returncode == 0, walked.stderr
    assert len(walked.stdout.splitlines()) == 3
    # No rate stored yet: the walk starts from typical ones, moving 0.1 % a round at most.
    assert rates.returncode == 0, rates.stderr
    rounds = [
        {c: Decimal(r) for c, r in json.loads(line).items()} for line in rates.stdout.splitlines()
    ]
    assert [sorted(r) for r in rounds] == [["EUR", "JPY"]] * 2
    for start, moved in zip([TYPICAL_RATES, *rounds], rounds, strict=False):
        for code, rate in moved.items():
            assert abs(rate / start[code] - 1) <= Decimal("0.001"), (code, start[code], rate)
            assert rate == rate.quantize(Decimal("1E-10")), rate
    url = clients.queue_url(provisioned.resources().price_updates_queue.name)
    depth = clients.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "11"  # 2 x 2 + 3 + 2 x 2
