"""The chaos test's conditional-order plan and checks, over hand-made books (and views):
no emulator, no processes. A check that never fires in a passing run is tested here to
fire."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_processor.analytics.parts import contribution
from order_processor.analytics.views import Report as AnalyticsReport
from order_processor.analytics.views import Views, add
from order_processor.domain.base import new_id
from order_processor.domain.commands import (
    CancelOrder,
    Convert,
    ConvertPayload,
    OrderReference,
    PlaceOrder,
    PlaceOrderPayload,
    PricePayload,
    UpdatePrice,
)
from order_processor.domain.events import order_event
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from tests.analytics import final
from tests.chaos.books import (
    ZERO,
    Balance,
    Books,
    Record,
    StoredOrder,
    effect_findings,
    implied_findings,
    ledger_findings,
    trail_stop,
    with_slippage,
)
from tests.chaos.cash import conservation_findings, conversion_findings, liquidity_findings
from tests.chaos.checks import (
    analytics_findings,
    command_findings,
    conditional_findings,
    converted_by_account,
    duplicate_findings,
    event_findings,
    marketable_notes,
    placed_by_repeat_notes,
)
from tests.chaos.load import (
    CONDITIONAL_TYPES,
    RATE_TICK_SECONDS,
    CancelIntent,
    ConvertIntent,
    FundsIntent,
    Journal,
    Listing,
    PlaceIntent,
    Plan,
    PriceIntent,
    RateIntent,
    RepeatIntent,
    Sent,
    Trader,
    make_plan,
)
from tests.chaos.observe import StatusEvents
from tests.chaos.quoted import paid_in_by_account, quote_findings

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_quarter_of_the_orders_are_conditional_of_every_type_some_cancelled_some_expiring() -> (
    None
):
    plan = make_plan(seed=5, users=10, commands=600, seconds=60)
    places = [i for i in plan.intents if isinstance(i, PlaceIntent)]
    conditional = [i for i in places if i.order_type.is_conditional]
    cancelled = {i.order_id for i in plan.intents if isinstance(i, CancelIntent)}

    assert 0.18 < len(conditional) / len(places) < 0.32
    assert {i.order_type for i in conditional} == set(CONDITIONAL_TYPES)
    assert any(i.order_id in cancelled for i in conditional)
    assert any(i.expires_in is not None for i in conditional)
    trailing = [i for i in conditional if i.order_type.is_trailing]
    assert any(i.trail_amount for i in trailing)
    assert any(i.trail_percent for i in trailing)
    assert all((i.trail_amount is None) != (i.trail_percent is None) for i in trailing)
    fixed = [i for i in conditional if not i.order_type.is_trailing]
    assert all(i.stop_price is not None and i.limit_price is None for i in fixed)
    for intent in places:
        intent.request()  # every request is valid


# --- hand-made books -----------------------------------------------------------------------


def plan_and_journal(*prices: str) -> tuple[Plan, Journal]:
    """BTC listed at 100, then each price published a second apart from START."""
    moves = [PriceIntent(n + 1.0, "BTC", Decimal(p)) for n, p in enumerate(prices)]
    plan = Plan(0, 10, (Listing("BTC", Decimal(100), 8),), (), tuple(moves))
    journal = Journal()
    for n, move in enumerate(moves):
        update = UpdatePrice(
            command_id=new_id(),
            username="price_feed",
            auth="unsigned",
            issued_at=START + timedelta(seconds=n + 1),
            payload=PricePayload(asset_id="BTC", price=move.price),
        )
        journal.record(Sent(move.at, update, move))
    return plan, journal


def order(kind: str, status: str = "COMPLETED", **fields: object) -> StoredOrder:
    defaults: dict[str, object] = {
        "order_id": "o-1",
        "username": "trader_00",
        "order_type": kind,
        "asset_id": "BTC",
        "quantity": Decimal(1),
        "limit_price": None,
        "price": None,
        "total_amount": None,
        "status": status,
        "sequence": 3,
        "step": status.lower(),
        "failure_reason": None,
        "expires_at": None,
        "updated_at": START + timedelta(seconds=30),
    }
    return StoredOrder(**{**defaults, **fields})  # type: ignore[arg-type]


def sent_as(journal: Journal, stored: StoredOrder, **request: object) -> None:
    intent = PlaceIntent(
        0.5, stored.username, stored.order_id, OrderType(stored.order_type), "BTC", Decimal(1)
    )
    journal.record(Sent(0.5, None, replace(intent, **request)))  # type: ignore[arg-type]


def books_of(*orders: StoredOrder, price: str = "100") -> Books:
    records = [r for o in orders for r in records_of(o)]
    return Books({}, records, {o.order_id: o for o in orders}, {"BTC": Decimal(price)})


def records_of(stored: StoredOrder) -> list[Record]:
    """A completed order's records: its hold, released, and the trade."""
    if stored.status != "COMPLETED" or stored.total_amount is None:
        return []
    if stored.is_buy:
        kinds = [("cash", "ORDER_HOLD"), ("cash", "ORDER_RELEASE")]
        kinds += [("cash", "ORDER_PAYMENT"), ("asset", "BUY")]
    else:
        kinds = [("asset", "HOLD"), ("asset", "RELEASE"), ("asset", "SELL"), ("cash", "ORDER_SALE")]
    amounts = {"ORDER_HOLD": stored.hold(), "ORDER_RELEASE": stored.hold()}
    return [
        Record(
            ledger,
            stored.username,
            f"{stored.order_id}#{kind.lower()}",
            "USD" if ledger == "cash" else stored.asset_id,
            kind,
            stored.quantity if ledger == "asset" else amounts.get(kind, stored.total_amount),
            "COMPLETED",
            stored.order_id,
        )
        for ledger, kind in kinds
    ]


def kinds(orders: StoredOrder, plan: Plan, journal: Journal) -> list[str]:
    return [f.kind for f in conditional_findings(journal, books_of(orders), plan)]


def executed(stored: StoredOrder, price: str) -> StoredOrder:
    cost = Decimal(price)
    return replace(stored, price=cost, total_amount=cost.quantize(Decimal("0.01")))


def test_a_trailing_sell_executes_only_at_its_trail_from_a_best_price_the_path_published() -> None:
    plan, journal = plan_and_journal("110", "104", "111")
    trailing = order(
        "TRAILING_STOP_SELL",
        trail_amount=Decimal(5),
        best_price=Decimal(110),
        stop_price=Decimal(105),
    )
    sent_as(journal, trailing, trail_amount=Decimal(5))
    good = executed(trailing, "104")
    assert kinds(good, plan, journal) == []
    assert not effect_findings(books_of(good), plan)

    above_its_stop = executed(trailing, "110")
    assert [f.kind for f in effect_findings(books_of(above_its_stop), plan)] == ["wrong_execution"]
    off_the_trail = executed(replace(trailing, stop_price=Decimal(106)), "104")
    assert "stop_off_the_trail" in kinds(off_the_trail, plan, journal)
    never_published = executed(
        replace(trailing, best_price=Decimal(109), stop_price=Decimal(104)), "104"
    )
    assert kinds(never_published, plan, journal) == ["unpublished_price"]
    # 111 came at START + 3 s: an execution at START + 2 s cannot have trailed it.
    too_early = executed(
        replace(
            trailing,
            best_price=Decimal(111),
            stop_price=Decimal(106),
            updated_at=START + timedelta(seconds=2),
        ),
        "104",
    )
    assert kinds(too_early, plan, journal) == ["price_from_the_future"]
    moved = replace(trailing, trail_amount=Decimal(4), stop_price=Decimal(106))
    assert kinds(executed(moved, "104"), plan, journal) == ["not_as_requested"]


def test_fixed_stops_trigger_on_their_side_of_the_stop() -> None:
    plan, journal = plan_and_journal("90", "120")
    for kind, fires, waits in (
        ("STOP_SELL", "90", "120"),
        ("TAKE_PROFIT_BUY", "90", "120"),
        ("STOP_BUY", "120", "90"),
        ("TAKE_PROFIT_SELL", "120", "90"),
    ):
        stop = order(kind, stop_price=Decimal(100), hold_price=None)
        if kind.endswith("BUY"):
            hold = with_slippage(Decimal(100)) if kind == "STOP_BUY" else Decimal(100)
            stop = replace(stop, hold_price=hold)
        sent_as(journal, stop, stop_price=Decimal(100))
        assert kinds(executed(stop, fires), plan, journal) == [], kind
        assert not effect_findings(books_of(executed(stop, fires)), plan), kind
        findings = effect_findings(books_of(executed(stop, waits)), plan)
        assert [f.kind for f in findings] == ["wrong_execution"], kind


def test_buys_hold_at_their_target_their_stop_plus_slippage_or_their_first_trail() -> None:
    plan, journal = plan_and_journal("95")
    stop_buy = order("STOP_BUY", "QUEUED", stop_price=Decimal(100), hold_price=Decimal(105))
    sent_as(journal, stop_buy, stop_price=Decimal(100))
    queued = {"stop_key": "BTC#RISE", "rise_key": "BTC", "rise_price": "100"}
    assert kinds(replace(stop_buy, index_keys=tuple(queued.items())), plan, journal) == []
    wrong = replace(stop_buy, hold_price=Decimal(100), index_keys=tuple(queued.items()))
    assert kinds(wrong, plan, journal) == ["wrong_hold_price"]

    # Placed at 100 with a 2 % trail: first stop 102, held at 107.10; the stop fell since.
    trailing = order(
        "TRAILING_STOP_BUY",
        "CANCELLED",
        trail_percent=Decimal(2),
        best_price=Decimal(95),
        stop_price=trail_stop(order("TRAILING_STOP_BUY", trail_percent=Decimal(2)), Decimal(95)),
        hold_price=Decimal("107.1"),
    )
    sent_as(journal, trailing, trail_percent=Decimal(2))
    assert kinds(trailing, plan, journal) == []
    assert kinds(replace(trailing, hold_price=Decimal("107.2")), plan, journal) == [
        "wrong_hold_price"
    ]
    sell = order("STOP_SELL", "CANCELLED", stop_price=Decimal(90), hold_price=Decimal(90))
    sent_as(journal, sell, stop_price=Decimal(90))
    assert kinds(sell, plan, journal) == ["wrong_hold_price"]


def test_resting_orders_are_in_exactly_the_indexes_their_state_puts_them_in() -> None:
    plan, journal = plan_and_journal()
    trailing = order(
        "TRAILING_STOP_SELL",
        "QUEUED",
        trail_amount=Decimal(5),
        best_price=Decimal(100),
        stop_price=Decimal(95),
        expires_at=START + timedelta(days=30),
    )
    sent_as(journal, trailing, trail_amount=Decimal(5))
    keys: tuple[tuple[str, str], ...] = (
        ("stop_key", "BTC#FALL"),
        ("trail_key", "BTC#SELL"),
        ("expiry_shard", "EXPIRING"),
        ("fall_key", "BTC"),
        ("fall_price", "95"),
        ("rise_key", "BTC"),
        ("rise_price", "100"),
    )
    assert kinds(replace(trailing, index_keys=keys), plan, journal) == []
    assert kinds(replace(trailing, index_keys=keys[:1] + keys[2:]), plan, journal) == [
        "wrong_index_keys"
    ]
    moved_without_its_reach = (*keys[:-1], ("rise_price", "90"))
    assert kinds(replace(trailing, index_keys=moved_without_its_reach), plan, journal) == [
        "wrong_index_keys"
    ]
    assert kinds(replace(trailing, status="EXPIRED", index_keys=keys), plan, journal) == [
        "wrong_index_keys"
    ]
    limit = order("LIMIT_BUY", "QUEUED", limit_price=Decimal(90), index_keys=keys[:1])
    assert kinds(limit, plan, journal) == ["wrong_index_keys"]


def test_a_waiting_order_the_final_price_triggers_or_would_trail_is_noted() -> None:
    trailing = order(
        "TRAILING_STOP_SELL",
        "QUEUED",
        trail_amount=Decimal(5),
        best_price=Decimal(100),
        stop_price=Decimal(95),
    )
    assert marketable_notes(books_of(trailing, price="99")) == []
    assert len(marketable_notes(books_of(trailing, price="94"))) == 1
    assert "worse than the final" in marketable_notes(books_of(trailing, price="101"))[0]


def test_only_a_stop_buy_short_of_usd_may_fail_after_it_was_held() -> None:
    plan, journal = plan_and_journal("120")
    stop_buy = order(
        "STOP_BUY",
        "FAILED",
        stop_price=Decimal(100),
        hold_price=Decimal(105),
        failure_reason="INSUFFICIENT_BALANCE",
        step="released",
    )
    sent_as(journal, stop_buy, stop_price=Decimal(100))
    held = [
        Record("cash", "trader_00", f"o-1#{k.lower()}", "USD", k, Decimal(105), "COMPLETED", "o-1")
        for k in ("ORDER_HOLD", "ORDER_RELEASE")
    ]
    books = replace(books_of(stop_buy), records=held)
    assert conditional_findings(journal, books, plan) == []
    assert not effect_findings(books, plan)

    other = replace(stop_buy, failure_reason="ORDER_VALUE_LIMIT")
    books = replace(books_of(other), records=held)
    assert [f.kind for f in conditional_findings(journal, books, plan)] == ["unexpected_failure"]


# --- an order whose first request was rejected ALREADY_EXPIRED ------------------------------


def rejected_then_repeated(repeat_rejected: bool) -> tuple[Journal, StatusEvents]:
    """order-1 (expiring 3 s after sending) rejected ALREADY_EXPIRED, an exact copy of it
    (rejected alike), then cancelled, then sent again with twice the quantity: itself
    rejected ALREADY_EXPIRED or placed."""
    intent = PlaceIntent(
        1.0,
        "trader_00",
        "order-1",
        OrderType.LIMIT_BUY,
        "BTC",
        Decimal(1),
        limit_price=Decimal(90),
        expires_in=3,
    )
    cancel = CancelIntent(2.0, "trader_00", "order-1")
    repeat = RepeatIntent(3.0, "trader_00", "order-1", conflicting_quantity=Decimal(2))
    journal = Journal()
    first = command(intent.order_id, intent.request())
    journal.record(Sent(1.0, first, intent))
    journal.record(Sent(1.5, first, RepeatIntent(1.5, "trader_00", "order-1"), "exact"))
    cancelling = CancelOrder(
        command_id=new_id(),
        username="trader_00",
        auth="t",
        payload=OrderReference(order_id="order-1"),
    )
    journal.record(Sent(2.0, cancelling, cancel))
    again = command(intent.order_id, intent.request(quantity=Decimal(2)))
    journal.record(Sent(3.0, again, repeat, "conflicting"))
    rejected = [(first, "ALREADY_EXPIRED"), (cancelling, "ORDER_NOT_FOUND")]
    if repeat_rejected:
        rejected.append((again, "ALREADY_EXPIRED"))
    events = StatusEvents(None, "")
    events.bodies = [
        {"event_type": "command.rejected", "data": {"command_id": c.command_id, "reason": r}}
        for c, r in rejected
    ]
    return journal, events


def command(order_id: str, request: OrderCreate) -> PlaceOrder:
    payload = PlaceOrderPayload(order_id=order_id, **request.model_dump(exclude_none=True))
    return PlaceOrder(command_id=new_id(), username="trader_00", auth="t", payload=payload)


def test_a_repeat_of_a_request_rejected_already_expired_is_a_new_request() -> None:
    journal, events = rejected_then_repeated(repeat_rejected=True)
    books = books_of()
    assert command_findings(journal, books, events) == []
    assert duplicate_findings(journal, books, events) == []

    journal, events = rejected_then_repeated(repeat_rejected=False)
    placed = order("LIMIT_BUY", "QUEUED", order_id="order-1", quantity=Decimal(2))
    books = books_of(replace(placed, limit_price=Decimal(90)))
    assert command_findings(journal, books, events) == []
    assert duplicate_findings(journal, books, events) == []
    assert "a conflicting repeat placed it" in placed_by_repeat_notes(journal, books, events)[0]

    books = books_of(replace(placed, limit_price=Decimal(90), quantity=Decimal(1)))
    assert [f.kind for f in duplicate_findings(journal, books, events)] == ["request_replaced"]


# --- the analytics views ------------------------------------------------------------------


def views_of(orders: list[Order]) -> AnalyticsReport:
    views = Views()
    for placed in orders:
        views.apply(order_event(placed))
    return views.report()


def test_the_analytics_check_fires_on_a_double_count_a_miscount_and_a_dead_letter() -> None:
    orders = [
        final(1, OrderType.MARKET_BUY, "1", "100", minutes=1),
        final(2, OrderType.MARKET_SELL, "0.5", "120", minutes=2),
        final(3, OrderType.LIMIT_BUY, "1", "90", OrderStatus.CANCELLED, minutes=3),
    ]
    books = books_of(
        *(order(o.order_type.value, o.status.value, order_id=o.order_id) for o in orders),
        order("LIMIT_BUY", "QUEUED", order_id="o-open"),
    )
    counted = {o.order_id: o.status.value.lower() for o in orders}
    rebuilt = views_of(orders)

    def kinds(stored: AnalyticsReport, marked: dict[str, str]) -> list[str]:
        return sorted({f.kind for f in analytics_findings(stored, rebuilt, marked, books, [], 0)})

    assert kinds(views_of(orders), counted) == []

    # A final event applied twice (its copy not kept out): its counters and its fill twice.
    twice = views_of(orders)
    part = contribution(order_event(orders[0]))
    assert part is not None
    assert part.fill is not None
    add(twice, part)
    twice.positions[(part.username, part.asset_id)].add(part.fill)
    found = analytics_findings(twice, rebuilt, counted, books, [], 0)
    assert {f.kind for f in found} == {"differs_from_rebuild", "final_count"}
    assert any(f.ids == ("positions ('alice_01', 'BTC')",) for f in found)

    # A final order never counted; one counted with another status; an open one counted.
    assert kinds(views_of(orders[1:]), {"o-2": "completed", "o-3": "cancelled"}) == [
        "differs_from_rebuild",
        "final_count",
        "not_counted",
    ]
    miscounted = {**counted, "o-3": "expired", "o-open": "completed"}
    assert kinds(views_of(orders), miscounted) == [
        "counted_not_final",
        "counted_other_status",
        "final_count",
    ]

    # A dead letter; a queue that never drained, and messages left in it.
    letter = {"event_type": "order.completed", "event_id": "o-1:3"}
    found = analytics_findings(views_of(orders), rebuilt, counted, books, [letter], 2)
    assert [(f.kind, f.ids) for f in found] == [
        ("dead_letter", ("order.completed", "o-1:3")),
        ("not_drained", ("queue",)),
    ]
    found = analytics_findings(views_of(orders), rebuilt, counted, books, [], 0, drained=False)
    assert [f.kind for f in found] == ["drain_gave_up"]


# --- currencies: the plan, liquidity, conservation, conversions ----------------------------


def test_money_moves_in_four_currencies_and_the_rates_walk_all_the_load() -> None:
    plan = make_plan(seed=5, users=10, commands=600, seconds=60)
    funds = [i for i in plan.intents if isinstance(i, FundsIntent)]
    conversions = [i for i in plan.intents if isinstance(i, ConvertIntent)]
    moves = [i for i in plan.intents if isinstance(i, RateIntent)]

    assert {(i.currency, i.withdraw) for i in funds} == {
        (c, w) for c in ("USD", "EUR", "GBP", "JPY") for w in (False, True)
    }
    assert all(i.amount == i.amount.to_integral() for i in funds if i.currency == "JPY")
    assert 0.07 < len(conversions) / 600 < 0.13
    every = {"USD", "EUR", "GBP", "JPY"}
    assert {i.sell for i in conversions} == {i.buy for i in conversions} == every
    assert all(i.sell != i.buy for i in conversions)
    for currency, _ in plan.rates:
        walk = [i for i in moves if i.currency == currency]
        assert len(walk) == 60 / RATE_TICK_SECONDS
        assert len(plan.rates_of(currency)) > 10
    assert any(t.cash for t in plan.traders)
    for intent in conversions:
        ConvertPayload(sell=intent.sell, buy=intent.buy, amount=intent.amount)  # each valid


FX = (("EUR", Decimal("1.0842")), ("JPY", Decimal("0.0067")))
# 100.00 EUR into JPY at 1.0842 / 0.0067 less 0.50 %, 10 places down: 161.0117910447 JPY
# per EUR, 16,101 JPY (16,101.18 rounded down).
RATE = Decimal("161.0117910447")


def fx_plan() -> Plan:
    trader = Trader("trader_00", Decimal("1000.00"), (), (("EUR", Decimal("500.00")),))
    moved = RateIntent(2.0, "EUR", Decimal("1.09"))
    return Plan(0, 10, (), (trader,), (moved,), FX)


def cash_record(record_id: str, currency: str, kind: str, amount: str) -> Record:
    return Record(
        "cash", "trader_00", record_id, currency, kind, Decimal(amount), "COMPLETED", None
    )


def conversion(sold: str = "100.00", bought: str = "16101", rate: Decimal = RATE) -> list[Record]:
    """trader_00's conversion c-1: `sold` EUR for `bought` JPY at `rate`, 0.5 % spread."""
    legs = (
        ("c-1#sold", "EUR", "CONVERSION_OUT", sold),
        ("c-1#bought", "JPY", "CONVERSION_IN", bought),
    )
    out, into = (replace(cash_record(*leg), spread_percent=Decimal("0.5")) for leg in legs)
    return [
        replace(out, counter_currency="JPY", counter_amount=Decimal(bought), rate=rate),
        replace(into, counter_currency="EUR", counter_amount=Decimal(sold), rate=rate),
    ]


def fx_books(records: list[Record], liquidity_jpy: str = "-16101") -> Books:
    """trader_00: 1,000 USD and 500 EUR to start, then 100 EUR into JPY."""
    seeds = [cash_record("seed-usd", "USD", "DEPOSIT", "1000.00")]
    seeds.append(cash_record("seed-eur", "EUR", "DEPOSIT", "500.00"))
    balances = {
        ("trader_00", c): Balance("trader_00", c, Decimal(a), Decimal(0))
        for c, a in (("USD", "1000.00"), ("EUR", "400.00"), ("JPY", "16101"))
    }
    liquidity = {
        ("trader_00", "EUR"): Decimal("100.00"),
        ("trader_00", "JPY"): Decimal(liquidity_jpy),
    }
    return Books(balances, seeds + records, {}, {}, liquidity)


ANNOUNCED = {("trader_00", "EUR"): Decimal("-100.00"), ("trader_00", "JPY"): Decimal(16101)}


def cash_kinds(books: Books, plan: Plan) -> list[str]:
    found = liquidity_findings(books, ANNOUNCED)
    found += conservation_findings(books, plan, {}, set())
    found += conversion_findings(books, plan, Decimal("0.50"))
    found += ledger_findings(books)
    return sorted(f.kind for f in found)


def test_a_conversion_at_a_published_rate_with_its_liquidity_passes() -> None:
    assert cash_kinds(fx_books(conversion()), fx_plan()) == []
    # 1.09 was published too: 100 EUR at 1.09 / 0.0067 less the spread.
    at_the_later_rate = conversion(bought="16187", rate=Decimal("161.8731343283"))
    books = fx_books(at_the_later_rate, "-16187")
    books.balances[("trader_00", "JPY")] = Balance("trader_00", "JPY", Decimal(16187), ZERO)
    announced = {**ANNOUNCED, ("trader_00", "JPY"): Decimal(16187)}
    assert liquidity_findings(books, announced) == []
    assert conversion_findings(books, fx_plan(), Decimal("0.50")) == []


def test_a_liquidity_part_one_minor_unit_off_breaks_conservation_in_its_currency() -> None:
    books = fx_books(conversion(), liquidity_jpy="-16100")

    assert cash_kinds(books, fx_plan()) == [
        "liquidity_mismatch",
        "liquidity_plan_mismatch",
        "not_conserved",
    ]
    (broken,) = conservation_findings(books, fx_plan(), {}, set())
    assert broken.ids == ("JPY",)
    assert broken.detail == "balances and liquidity hold 1; in less out is 0"


def test_a_bought_amount_its_rate_does_not_give_is_found() -> None:
    books = fx_books(conversion(bought="16102"), liquidity_jpy="-16102")
    books.balances[("trader_00", "JPY")] = Balance("trader_00", "JPY", Decimal(16102), ZERO)

    found = conversion_findings(books, fx_plan(), Decimal("0.50"))

    assert [(f.kind, f.ids) for f in found] == [("amounts_off_rate", ("trader_00", "c-1"))]


def test_a_rate_no_published_rates_give_is_found() -> None:
    off = RATE + Decimal("0.0000000001")

    found = conversion_findings(fx_books(conversion(rate=off)), fx_plan(), Decimal("0.50"))

    assert [f.kind for f in found] == ["rate_not_published"]


@pytest.mark.parametrize("missing", ["c-1#sold", "c-1#bought"])
def test_a_conversion_missing_one_of_its_records_is_found(missing: str) -> None:
    records = [r for r in conversion() if r.record_id != missing]

    found = conversion_findings(fx_books(records), fx_plan(), Decimal("0.50"))

    assert [f.kind for f in found] == ["pair_incomplete"]
    assert "liquidity_mismatch" in cash_kinds(fx_books(records), fx_plan())


def test_a_conversion_recorded_otherwise_than_sent_or_announced_is_found() -> None:
    intent = ConvertIntent(1.0, "trader_00", "convert-1", "EUR", "JPY", Decimal("100.00"))
    command = Convert(
        command_id="c-1",
        username="trader_00",
        auth="t",
        payload=ConvertPayload(sell="EUR", buy="JPY", amount=Decimal("100.00")),
    )
    journal = Journal()
    journal.record(Sent(1.0, command, intent))
    books = fx_books(conversion())
    heard = StatusEvents(None, "")
    data = {"conversion_id": "c-1", "sell": "EUR", "sold": "100.00", "buy": "JPY"}
    data |= {"bought": "16101", "rate": str(RATE), "spread_percent": "0.5"}
    heard.bodies = [{"event_type": "balance.converted", "data": data}]

    assert command_findings(journal, books, heard) == []
    assert converted_by_account(journal, heard) == ANNOUNCED
    silent = StatusEvents(None, "")
    assert [f.kind for f in command_findings(journal, books, silent)] == [
        "conversion_event_disagrees"
    ]
    heard.bodies = [{"event_type": "balance.converted", "data": {**data, "bought": "16100"}}]
    assert [f.kind for f in command_findings(journal, books, heard)] == ["conversion_event_differs"]
    other = replace(journal.sent[0], intent=replace(intent, buy="GBP"))
    journal.sent[0], journal.by_key["convert-1"] = other, other
    heard.bodies[0]["data"]["bought"] = "16101"
    assert [f.kind for f in command_findings(journal, books, heard)] == ["conversion_wrong_record"]


# --- orders in other currencies: quoted assets, buys paid in another currency -------------


def test_some_orders_trade_assets_quoted_in_euros_and_yen_and_some_buys_pay_in_another() -> None:
    plan = make_plan(seed=5, users=10, commands=600, seconds=60)
    places = [i for i in plan.intents if isinstance(i, PlaceIntent)]
    quotes = {x.asset_id: x.quote for x in plan.listings}
    paid_in = [i for i in places if i.pay_currency is not None]

    assert {quotes[i.asset_id] for i in places} == {"USD", "EUR", "JPY"}
    euro_kinds = {i.order_type for i in places if quotes[i.asset_id] == "EUR"}
    assert {OrderType.MARKET_BUY, OrderType.MARKET_SELL, OrderType.LIMIT_BUY} <= euro_kinds
    assert any(kind.is_conditional and kind.is_buy for kind in euro_kinds)
    assert {i.order_type for i in paid_in} == {OrderType.MARKET_BUY}
    assert {(quotes[i.asset_id], i.pay_currency) for i in paid_in} >= {
        ("EUR", "USD"),
        ("EUR", "GBP"),
        ("JPY", "USD"),
    }
    assert all(i.pay_currency != quotes[i.asset_id] for i in paid_in)
    # Some worth 4,000 USD or more: more than most traders hold in the currency they pay.
    listed = {x.asset_id: x for x in plan.listings}
    rates = dict(plan.rates) | {"USD": Decimal(1)}
    worth = [i.quantity * listed[i.asset_id].price * rates[quotes[i.asset_id]] for i in paid_in]
    assert any(w > 3500 for w in worth)
    assert all(w < 9000 for w in worth)
    for intent in places:
        intent.request()  # every request is valid


EURO = Listing("ETHEUR", Decimal(2800), 6, "EUR")
# 0.01 ETHEUR at 2800.00 EUR: 28.00 EUR, paid in USD at 1 / 1.0842 less 0.50 %, 10 places
# down (0.9177273565 EUR per USD): 30.52 USD, rounded up.
PAY_RATE = Decimal("0.9177273565")


def euro_plan() -> Plan:
    trader = Trader("trader_00", Decimal("1000.00"), (), (("EUR", Decimal("500.00")),))
    return Plan(0, 10, (EURO,), (trader,), (), FX)


def paid_in_usd(paid: str = "30.52", **fields: object) -> StoredOrder:
    base = order(
        "MARKET_BUY",
        asset_id="ETHEUR",
        quantity=Decimal("0.01"),
        price=Decimal(2800),
        total_amount=Decimal("28.00"),
        quote_currency="EUR",
        pay_currency="USD",
        paid_amount=Decimal(paid),
        pay_rate=PAY_RATE,
        pay_spread_percent=Decimal("0.5"),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def paid_in_records(stored: StoredOrder) -> list[Record]:
    """The buy's records as the saga writes them: its conversion's pair, its payment in
    euros, the asset bought."""
    assert stored.paid_amount is not None
    assert stored.total_amount is not None
    terms = {"rate": stored.pay_rate, "spread_percent": Decimal("0.5")}
    sold = Record(
        "cash", "trader_00", "o-1#fx-sold", "USD", "CONVERSION_OUT", stored.paid_amount,
        "COMPLETED", "o-1", "EUR", stored.total_amount, **terms,
    )  # fmt: skip
    bought = Record(
        "cash", "trader_00", "o-1#fx-bought", "EUR", "CONVERSION_IN", stored.total_amount,
        "COMPLETED", "o-1", "USD", stored.paid_amount, **terms,
    )  # fmt: skip
    paid = Record(
        "cash", "trader_00", "o-1#payment", "EUR", "ORDER_PAYMENT", stored.total_amount,
        "COMPLETED", "o-1",
    )  # fmt: skip
    bought_asset = Record(
        "asset", "trader_00", "o-1#buy", "ETHEUR", "BUY", stored.quantity, "COMPLETED", "o-1"
    )
    return [sold, bought, paid, bought_asset]


def euro_books(stored: StoredOrder, records: list[Record] | None = None) -> Books:
    """trader_00: 1,000 USD and 500 EUR to start, then the buy paid in dollars."""
    seeds = [cash_record("seed-usd", "USD", "DEPOSIT", "1000.00")]
    seeds.append(cash_record("seed-eur", "EUR", "DEPOSIT", "500.00"))
    paid = stored.paid_amount or ZERO
    balances = {
        ("trader_00", "USD"): Balance("trader_00", "USD", Decimal("1000.00") - paid, ZERO),
        ("trader_00", "EUR"): Balance("trader_00", "EUR", Decimal("500.00"), ZERO),
        ("trader_00", "ETHEUR"): Balance("trader_00", "ETHEUR", stored.quantity, ZERO),
    }
    liquidity = {("trader_00", "USD"): paid, ("trader_00", "EUR"): -(stored.total_amount or ZERO)}
    orders = {stored.order_id: stored}
    found = paid_in_records(stored) if records is None else records
    return Books(balances, seeds + found, orders, {"ETHEUR": Decimal(2800)}, liquidity)


def euro_kinds(books: Books) -> list[str]:
    plan, order_ids = euro_plan(), set(books.orders)
    exchanged = paid_in_by_account(books, order_ids)
    found = effect_findings(books, plan) + ledger_findings(books)
    found += implied_findings(books, plan, {}, order_ids)
    found += liquidity_findings(books, exchanged)
    found += conservation_findings(books, plan, {}, order_ids)
    found += conversion_findings(books, plan, Decimal("0.50"))
    return sorted(f.kind for f in found)


def test_a_euro_buy_paid_in_dollars_at_its_pay_rate_with_its_liquidity_passes() -> None:
    books = euro_books(paid_in_usd())

    assert euro_kinds(books) == []
    assert paid_in_by_account(books, {"o-1"}) == {
        ("trader_00", "USD"): Decimal("-30.52"),
        ("trader_00", "EUR"): Decimal("28.00"),
    }


def test_a_buy_paid_a_cent_short_of_its_total_at_its_pay_rate_is_found() -> None:
    # 30.51 USD buys 27.99 EUR at the rate: the payment rounded down, for the customer.
    books = euro_books(paid_in_usd(paid="30.51"))

    assert euro_kinds(books) == ["amounts_off_rate", "wrong_execution"]


def test_a_buy_paid_in_another_currency_without_its_conversion_is_found() -> None:
    stored = paid_in_usd()
    records = [r for r in paid_in_records(stored) if r.record_id != "o-1#fx-bought"]

    found = euro_kinds(euro_books(stored, records))

    assert "wrong_records" in found
    assert "pair_incomplete" in found
    assert "liquidity_mismatch" in found


def test_a_payment_in_the_wrong_currency_or_at_another_rate_is_found() -> None:
    stored = paid_in_usd()
    records = paid_in_records(stored)
    in_dollars = [replace(r, asset_id="USD") if r.kind == "ORDER_PAYMENT" else r for r in records]
    assert "wrong_amount" in euro_kinds(euro_books(stored, in_dollars))

    other_rate = [
        replace(r, rate=PAY_RATE + Decimal("1e-10")) if r.is_conversion else r for r in records
    ]
    found = effect_findings(euro_books(stored, other_rate), euro_plan())
    assert [f.kind for f in found] == ["wrong_pay_rate", "wrong_pay_rate"]


def test_a_euro_or_yen_total_rounded_to_another_minor_unit_is_found() -> None:
    euro = order(
        "MARKET_BUY",
        asset_id="ETHEUR",
        quantity=Decimal("0.001234"),
        price=Decimal("2800.5"),
        total_amount=Decimal("3.46"),  # 3.4558..., up to the cent
        quote_currency="EUR",
    )
    plan = Plan(0, 10, (replace(EURO, price=Decimal("2800.5")),), (), (), FX)

    def kinds_of(stored: StoredOrder, currency: str) -> list[str]:
        assert stored.total_amount is not None
        records = [
            Record("cash", "trader_00", "o-1#payment", currency, "ORDER_PAYMENT",
                   stored.total_amount, "COMPLETED", "o-1"),
            Record("asset", "trader_00", "o-1#buy", stored.asset_id, "BUY", stored.quantity,
                   "COMPLETED", "o-1"),
        ]  # fmt: skip
        books = Books({}, records, {"o-1": stored}, {})
        return [f.kind for f in effect_findings(books, plan)]

    assert kinds_of(euro, "EUR") == []
    assert kinds_of(euro, "USD") == ["record_of_another_account", "wrong_amount"]  # in dollars
    yen = replace(euro, asset_id="ETHEUR", quote_currency="JPY", total_amount=Decimal("3.46"))
    assert kinds_of(yen, "JPY") == ["wrong_execution"]  # 4 JPY: rounded up to the yen
    assert kinds_of(replace(yen, total_amount=Decimal(4)), "JPY") == []


def test_a_euro_limit_buy_holds_euros_rounded_up_to_the_cent() -> None:
    resting = order(
        "LIMIT_BUY",
        "QUEUED",
        asset_id="ETHEUR",
        quantity=Decimal("0.123457"),
        limit_price=Decimal("2700.1234"),
        quote_currency="EUR",
    )
    held = Decimal("333.35")  # 333.3478...
    hold = Record("cash", "trader_00", "o-1#hold", "EUR", "ORDER_HOLD", held, "COMPLETED", "o-1")
    books = euro_books(resting, [hold])
    books.balances[("trader_00", "EUR")] = Balance("trader_00", "EUR", 500 - held, held)
    del books.balances[("trader_00", "ETHEUR")]
    plan = euro_plan()

    assert effect_findings(books, plan) == []
    assert implied_findings(books, plan, {}, {"o-1"}) == []
    in_dollars = replace(books, records=[*books.records[:2], replace(hold, asset_id="USD")])
    assert [f.kind for f in effect_findings(in_dollars, plan)] == [
        "record_of_another_account",
        "wrong_amount",
    ]


def test_a_buy_paid_in_another_currency_fails_only_for_want_of_it_moving_nothing() -> None:
    plan, journal = euro_plan(), Journal()
    failed = replace(
        order("MARKET_BUY", "FAILED", asset_id="ETHEUR", quote_currency="EUR"),
        pay_currency="USD",
        failure_reason="INSUFFICIENT_BALANCE",
    )
    sent_as(journal, failed, asset_id="ETHEUR", pay_currency="USD")

    def kinds_of(stored: StoredOrder, records: list[Record] | None = None) -> list[str]:
        books = Books({}, records or [], {"o-1": stored}, {})
        found = quote_findings(journal, books, plan) + effect_findings(books, plan)
        return [f.kind for f in found]

    assert kinds_of(failed) == []
    assert kinds_of(replace(failed, failure_reason="ORDER_VALUE_LIMIT")) == ["unexpected_failure"]
    assert kinds_of(replace(failed, pay_currency="GBP")) == ["wrong_currencies"]
    assert kinds_of(replace(failed, quote_currency="USD")) == ["wrong_currencies"]
    sold = paid_in_records(paid_in_usd())[0]
    assert kinds_of(failed, [sold]) == ["wrong_records", "wrong_amount", "wrong_pay_rate"]


def test_an_order_event_telling_other_money_than_is_stored_is_found() -> None:
    stored = paid_in_usd()
    data = {
        "quote_currency": "EUR",
        "total_amount": "28.00",
        "pay_currency": "USD",
        "paid_amount": "30.52",
        "pay_rate": str(PAY_RATE),
        "pay_spread_percent": "0.50",
    }
    body = {"event_type": "order.completed", "order_id": "o-1", "status": "COMPLETED"}
    heard = StatusEvents(None, "")
    heard.bodies = [{**body, "sequence": 3, "data": data}]
    assert event_findings(books_of(stored), heard) == []

    heard.bodies = [{**body, "sequence": 3, "data": {**data, "paid_amount": "30.51"}}]
    assert [f.kind for f in event_findings(books_of(stored), heard)] == ["last_event_money_differs"]
