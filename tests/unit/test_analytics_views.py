"""Analytics views from order events: each final event counted once, whatever copies and
order the stream delivers, and average-cost P&L in the order the fills happened; volume
and P&L per quote currency, valued in the base currency at the stored rates; conversions
per pair, each once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_processor.analytics.parts import Fill, MalformedEvent
from order_processor.analytics.summary import summary
from order_processor.analytics.valuation import Rates
from order_processor.analytics.views import Views
from order_processor.domain.events import order_event
from order_processor.domain.fx import ExchangeRate
from order_processor.domain.orders import OrderStatus, OrderType
from tests.analytics import QUOTES, conversion, final


def test_average_cost_pnl_of_buys_and_a_partial_sell() -> None:
    views = Views()
    for order in (
        final(1, OrderType.MARKET_BUY, "1", "100", minutes=0),
        final(2, OrderType.MARKET_BUY, "1", "200", minutes=1),
        final(3, OrderType.MARKET_SELL, "1.5", "300", minutes=2),
    ):
        views.apply(order_event(order))

    position = views.position("alice_01", "BTC")
    # Average cost 150: 1.5 sold for 450 against 225 -> 225 realised; 0.5 left costing 75.
    assert (position.quantity, position.cost, position.realised) == (
        Decimal("0.5"),
        Decimal("75"),
        Decimal("225"),
    )


def test_status_counts_failure_reasons_fill_ratio_and_volume_by_bucket() -> None:
    views = Views()
    for order in (
        final(1, OrderType.MARKET_BUY, "2", "100", minutes=0),
        final(2, OrderType.MARKET_BUY, "1", "100", OrderStatus.FAILED, minutes=0),
        final(3, OrderType.MARKET_SELL, "1", "0", OrderStatus.CANCELLED, minutes=61),
        final(4, OrderType.MARKET_SELL, "1", "110", minutes=61),
    ):
        views.apply(order_event(order))

    assert dict(views.counters.statuses) == {"completed": 2, "failed": 1, "cancelled": 1}
    assert dict(views.counters.failures) == {"INSUFFICIENT_BALANCE": 1}
    assert views.counters.fill_ratio == Decimal("0.5")
    volume = views.counters.volume
    assert volume[("BTC", "USD", "hour", "2026-11-28T12")].amount == Decimal("200.00")
    assert volume[("BTC", "USD", "hour", "2026-11-28T13")].amount == Decimal("110.00")
    assert volume[("BTC", "USD", "day", "2026-11-28")].orders == 2


fills = st.lists(
    st.tuples(
        st.sampled_from([OrderType.MARKET_BUY, OrderType.MARKET_SELL]),
        st.sampled_from(["0.5", "1", "2"]),
        st.sampled_from(["90", "100", "123.45"]),
        st.sampled_from(list(OrderStatus)[4:]),  # the final statuses
        st.sampled_from(["alice_01", "bob_01"]),
        st.sampled_from(sorted(QUOTES)),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(orders=fills, seed=st.integers(0, 2**32))
def test_copies_and_any_arrival_order_give_the_views_of_one_punctual_delivery(
    orders: list[tuple[OrderType, str, str, OrderStatus, str, str]], seed: int
) -> None:
    finals = [
        final(n, kind, quantity, price, status, user, n, asset, currency=QUOTES[asset])
        for n, (kind, quantity, price, status, user, asset) in enumerate(orders)
    ]
    punctual, stream = Views(), Views()
    for order in finals:
        punctual.apply(order_event(order))
    # Each event up to three times, a few earlier states too, all shuffled.
    delivered = [order_event(o) for o in finals for _ in range(random.Random(seed).randint(1, 3))]
    delivered += [order_event(o.evolve(status=OrderStatus.PROCESSING, sequence=2)) for o in finals]
    random.Random(seed).shuffle(delivered)
    for event in delivered:
        stream.apply(event)

    assert stream.report().differences(punctual.report()) == []
    assert stream.counters.statuses == punctual.counters.statuses
    assert stream.counters.failures == punctual.counters.failures
    assert dict(stream.counters.volume) == dict(punctual.counters.volume)
    for user in ("alice_01", "bob_01"):
        for asset in QUOTES:
            assert stream.position(user, asset) == punctual.position(user, asset)


def test_volume_and_positions_keep_every_digit_of_an_18_place_quantity() -> None:
    """A quantity may carry 15 integer digits and 18 places (33 digits): the default
    decimal context (28 digits) must not round the sums. Ten billion units of a cheap
    18-place token are a few hundred USD."""
    quantity = "10000000000.000000000000000005"  # 29 significant digits
    views = Views()
    for n, kind in enumerate([OrderType.MARKET_BUY, OrderType.MARKET_BUY]):
        views.apply(order_event(final(n, kind, quantity, "0.00000001", minutes=n, asset="SHIB")))
    exact = Decimal("20000000000.000000000000000010")

    report = views.report()
    assert report.volume[("SHIB", "USD", "day", "2026-11-28")].quantity == exact
    assert report.positions[("alice_01", "SHIB")].quantity == exact
    shown = summary(report)
    assert shown["volume"]["SHIB"]["day"][0]["quantity"] == "20000000000.00000000000000001"
    assert shown["positions"][0]["quantity"] == "20000000000.00000000000000001"

    # Selling what was bought leaves nothing held and nothing realised against no cost.
    views.apply(
        order_event(
            final(
                3,
                OrderType.MARKET_SELL,
                "20000000000.00000000000000001",
                "0.00000001",
                minutes=3,
                asset="SHIB",
            )
        )
    )
    position = views.position("alice_01", "SHIB")
    assert position.quantity == 0
    assert position.cost == 0


fill_times = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
).map(lambda at: at.replace(tzinfo=UTC))
order_ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(times=st.tuples(fill_times, fill_times), ids=st.tuples(order_ids, order_ids))
def test_a_fills_key_sorts_as_the_fill_itself(
    times: tuple[datetime, datetime], ids: tuple[str, str]
) -> None:
    """The store decides "later than the position's last fill" on the keys as text, the
    rebuild sorts the fills themselves: the two orders must agree for any time an event
    may carry (a year before 1000 printed without its leading zeros sorted after 2026)."""
    a, b = (
        Fill(at, order_id, True, Decimal(1), Decimal(1))
        for at, order_id in zip(times, ids, strict=True)
    )
    assert (a < b) == (a.key < b.key)
    assert (a == b) == (a.key == b.key)


NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
MAX_AGE = timedelta(seconds=300)


def rates(age: timedelta = timedelta(seconds=10), **values: str) -> Rates:
    stored = {
        code: ExchangeRate(currency=code, rate=rate, as_of=NOW - age)
        for code, rate in values.items()
    }
    return Rates(stored, NOW, MAX_AGE)


def traded_in_three_currencies() -> Views:
    """Alice trades ETH in euros and BTC in dollars; Bob trades SOL in yen."""
    views = Views()
    for order in (
        final(1, OrderType.MARKET_BUY, "2", "1500.25", asset="ETH", currency="EUR"),  # 3000.50
        final(2, OrderType.MARKET_SELL, "1", "1600", asset="ETH", currency="EUR", minutes=1),
        final(3, OrderType.MARKET_BUY, "0.1", "50000", asset="BTC", minutes=2),  # 5000.00
        final(4, OrderType.MARKET_BUY, "3", "21000", user="bob_01", asset="SOL", currency="JPY"),
        final(5, OrderType.MARKET_SELL, "1", "22500", user="bob_01", asset="SOL", currency="JPY"),
    ):
        views.apply(order_event(order))
    return views


def by_currency(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["currency"]: row for row in shown["currencies"]["by_currency"]}


def test_volume_and_pnl_are_kept_per_quote_currency_and_never_summed_across() -> None:
    report = traded_in_three_currencies().report()

    day = "2026-11-28"
    assert report.volume[("ETH", "EUR", "day", day)].amount == Decimal("4600.50")
    assert report.volume[("SOL", "JPY", "day", day)].amount == Decimal("85500")
    assert report.volume[("BTC", "USD", "day", day)].amount == Decimal("5000.00")
    eth = report.positions[("alice_01", "ETH")]
    # Average cost 1500.25 a unit: one sold for 1600 realises 99.75 EUR.
    assert (eth.currency, eth.realised, eth.cost) == ("EUR", Decimal("99.75"), Decimal("1500.25"))
    assert report.positions[("bob_01", "SOL")].realised == Decimal(1500)  # yen
    shown = summary(report)
    (eth_day,) = shown["volume"]["ETH"]["day"]
    assert (eth_day["currency"], eth_day["amount"], eth_day["orders"]) == ("EUR", "4600.5", 2)
    figures = by_currency(shown)
    assert {c: (r["volume"], r["realised_pnl"]) for c, r in figures.items()} == {
        "EUR": ("4600.5", "99.75"),
        "JPY": ("85500", "1500"),
        "USD": ("5000", "0"),
    }


def test_totals_in_the_base_currency_are_at_the_stored_rates_rounded_to_the_cent() -> None:
    shown = summary(traded_in_three_currencies().report(), rates(EUR="1.08", JPY="0.0067"))

    figures = by_currency(shown)
    assert figures["EUR"]["in_base"]["volume"] == "4968.54"  # 4600.50 x 1.08
    assert figures["EUR"]["in_base"]["realised_pnl"] == "107.73"  # 99.75 x 1.08
    assert figures["JPY"]["in_base"]["volume"] == "572.85"  # 85500 x 0.0067
    assert (figures["JPY"]["rate"], figures["USD"]["rate"]) == ("0.0067", "1")
    total = shown["currencies"]["total_in_base"]
    assert (total["volume"], total["realised_pnl"]) == ("10541.39", "117.78")
    assert total["rates_as_of"] == (NOW - timedelta(seconds=10)).isoformat()
    assert total["unconverted"] == {}
    alice, bob = shown["users"]
    assert (alice["username"], alice["volume_in_base"]) == ("alice_01", "9968.54")
    assert alice["volume"] == {"EUR": "4600.5", "USD": "5000"}
    assert (bob["volume_in_base"], bob["realised_pnl_in_base"]) == ("572.85", "10.05")


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (rates(EUR="1.08"), "FX_RATE_MISSING"),
        (rates(timedelta(seconds=301), EUR="1.08", JPY="0.0067"), "FX_RATE_STALE"),
    ],
)
def test_a_currency_without_a_fresh_rate_stays_out_of_the_totals_and_says_why(
    stored: Rates, reason: str
) -> None:
    shown = summary(traded_in_three_currencies().report(), stored)

    jpy = by_currency(shown)["JPY"]
    assert (jpy["in_base"], jpy["unconverted"]) == (None, reason)
    assert jpy["volume"] == "85500"  # still shown, in yen
    total = shown["currencies"]["total_in_base"]
    assert total["unconverted"]["JPY"] == reason
    if reason == "FX_RATE_MISSING":  # the euros are in: 5000.00 + 4968.54
        assert (total["volume"], total["realised_pnl"]) == ("9968.54", "107.73")
    bob = next(u for u in shown["users"] if u["username"] == "bob_01")
    assert (bob["volume_in_base"], bob["unconverted"]) == ("0", ["JPY"])


def test_conversions_count_once_per_pair_with_the_spread_kept_at_their_mid_rate() -> None:
    views = Views()
    # 1000 EUR at 1.0746 USD (mid 1.08 less 0.5 %): 1074.60 USD, 5.40 USD kept.
    converted = conversion("c-1", "EUR", "1000.00", "USD", "1074.60", "1.0746")
    # 5000.00 USD of BTC paid in euros at the same rate: 4652.90 EUR (rounded up).
    paid = final(6, OrderType.MARKET_BUY, "0.1", "50000", user="bob_01").evolve(
        pay_currency="EUR",
        paid_amount=Decimal("4652.90"),
        pay_rate=Decimal("1.0746"),
        pay_spread_percent=Decimal("0.5"),
    )
    yen = conversion("c-2", "USD", "100.00", "JPY", "14850", "148.5074626865")
    copy = converted.model_copy(update={"event_id": "another id"})
    for event in (converted, order_event(paid), yen, converted, copy):
        views.apply(event)

    report = views.report()
    eur_usd = report.conversions[("EUR", "USD")]
    assert eur_usd.figures() == (2, Decimal("5652.90"), Decimal("6074.60"), Decimal("30.532"))
    shown = summary(report, rates(EUR="1.08"))
    assert [(c["sell"], c["buy"], c["spread_in_base"]) for c in shown["conversions"]] == [
        ("EUR", "USD", "30.53"),
        ("USD", "JPY", None),  # no yen rate
    ]
    assert shown["conversions"][1]["spread"] == "75.3731343216"  # yen, to 10 places
    assert shown["currencies"]["total_in_base"]["conversion_spread"] == "30.53"
    with_yen = summary(report, rates(EUR="1.08", JPY="0.0067"))
    assert with_yen["currencies"]["total_in_base"]["conversion_spread"] == "31.03"  # + 0.50


def test_a_fill_in_another_currency_than_its_position_is_refused() -> None:
    views = Views()
    views.apply(order_event(final(1, OrderType.MARKET_BUY, "1", "100", asset="ETH")))
    views.apply(order_event(final(2, OrderType.MARKET_BUY, "1", "90", asset="ETH", currency="EUR")))

    with pytest.raises(MalformedEvent, match="a fill in EUR of a position in USD"):
        views.report()
