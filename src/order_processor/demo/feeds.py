"""Price feeds: where UpdatePrice commands come from.

- `random_walk`: a simulated market, each tick moving every price by at most `step` (a
  fraction), quantised to the price's 8 places (a rate's 10); seeded for reproducible
  runs. `TYPICAL_RATES` start the exchange rates' walk where no rate is stored yet.
- `coingecko_prices`: a public market-data API of the CoinGecko `coins/markets` shape,
  read with `parse_float=Decimal` so a price never passes through a float.
"""

from __future__ import annotations

import json
import random
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from decimal import Decimal

from order_processor.domain.money import PRICE_PLACES, step

PRICE_STEP = step(PRICE_PLACES)
# Dollars per unit, about where they stood in late 2026: a demo's starting point only.
TYPICAL_RATES = {
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "JPY": Decimal("0.0067"),
    "CHF": Decimal("1.13"),
}


def random_walk(
    start: Mapping[str, Decimal],
    *,
    step_fraction: Decimal = Decimal("0.01"),
    seed: int | None = None,
    places: int = PRICE_PLACES,
) -> Iterator[dict[str, Decimal]]:
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    unit = step(places)
    prices = dict(start)
    while True:
        for asset_id, price in prices.items():
            move = Decimal(rng.randint(-1000, 1000)) / 1000 * step_fraction
            prices[asset_id] = max(unit, (price * (1 + move)).quantize(unit))
        yield dict(prices)


def coingecko_prices(
    base_url: str, coins: Mapping[str, str], timeout: float = 10
) -> dict[str, Decimal]:
    """`coins` maps an asset id to the API's coin id ({"BTC": "bitcoin"}); returns the
    asset ids whose price came back. Raises ValueError on an answer of another shape."""
    query = urllib.parse.urlencode({"vs_currency": "usd", "ids": ",".join(coins.values())})
    url = f"{base_url.rstrip('/')}/coins/markets?{query}"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {base_url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:
        rows = json.loads(response.read(), parse_float=Decimal)
    if not isinstance(rows, list):
        raise ValueError("coins/markets answered with something other than a list")
    by_coin = {row.get("id"): row.get("current_price") for row in rows if isinstance(row, dict)}
    prices: dict[str, Decimal] = {}
    for asset_id, coin in coins.items():
        price = by_coin.get(coin)
        if isinstance(price, int | Decimal) and price > 0:
            prices[asset_id] = Decimal(price).quantize(PRICE_STEP)
    return prices
