"""Analytics views from order events: each final event counted once, whatever copies and
order the stream delivers, and average-cost P&L in the order the fills happened."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from order_processor.analytics.summary import summary
from order_processor.analytics.views import Fill, Views
from order_processor.domain.events import order_event
from order_processor.domain.orders import OrderStatus, OrderType
from tests.analytics import final


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
    assert views.counters.volume[("BTC", "hour", "2026-11-28T12")].usd == Decimal("200.00")
    assert views.counters.volume[("BTC", "hour", "2026-11-28T13")].usd == Decimal("110.00")
    assert views.counters.volume[("BTC", "day", "2026-11-28")].orders == 2


fills = st.lists(
    st.tuples(
        st.sampled_from([OrderType.MARKET_BUY, OrderType.MARKET_SELL]),
        st.sampled_from(["0.5", "1", "2"]),
        st.sampled_from(["90", "100", "123.45"]),
        st.sampled_from(list(OrderStatus)[4:]),  # the final statuses
        st.sampled_from(["alice_01", "bob_01"]),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(orders=fills, seed=st.integers(0, 2**32))
def test_copies_and_any_arrival_order_give_the_views_of_one_punctual_delivery(
    orders: list[tuple[OrderType, str, str, OrderStatus, str]], seed: int
) -> None:
    finals = [
        final(n, kind, quantity, price, status, user, minutes=n)
        for n, (kind, quantity, price, status, user) in enumerate(orders)
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
        assert stream.position(user, "BTC") == punctual.position(user, "BTC")


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
    assert report.volume[("SHIB", "day", "2026-11-28")].quantity == exact
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
