"""The recount's cash, per currency: each liquidity part against its user's conversions,
each conversion's two records against each other, their recorded rate and the rates the
load published, and every currency's money conserved against what the load put in and
took out. From the raw items of `tests.chaos.books`; the minor units and the rounding of
a conversion written out again here, not imported from the domain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from tests.chaos.books import MINOR_UNITS, PAID_IN, ZERO, Books, Record, StoredOrder, unit
from tests.chaos.findings import Finding, finding
from tests.chaos.load import Plan

RATE_STEP = Decimal("1e-10")  # a conversion's rate: 10 places, rounded down
LEGS = {"sold": "CONVERSION_OUT", "bought": "CONVERSION_IN"}
Account = tuple[str, str]  # (username, currency)


def bought_for(sold: Decimal, rate: Decimal, currency: str) -> Decimal:
    """Selling exactly `sold`: what it buys of `currency`, rounded down."""
    with localcontext() as context:
        context.prec = 60
        return (sold * rate).quantize(unit(currency), rounding=ROUND_FLOOR)


def sold_for(bought: Decimal, rate: Decimal, currency: str) -> Decimal:
    """Buying exactly `bought`: what it costs in `currency`, rounded up."""
    with localcontext() as context:
        context.prec = 60
        return (bought / rate).quantize(unit(currency), rounding=ROUND_CEILING)


# --- liquidity: the exchange's parts, opposite to the conversions ---------------------------


def liquidity_findings(books: Books, converted: dict[Account, Decimal]) -> list[Finding]:
    """Each user's liquidity part in each currency: the opposite of that user's
    conversion records in it, and of the conversions the load saw made (`converted`: what
    the balance.converted events and the completed buys paid in another currency moved
    the user's balance by)."""
    recorded: dict[Account, Decimal] = defaultdict(lambda: ZERO)
    for record in books.records:
        if record.is_conversion and record.status == "COMPLETED":
            recorded[(record.username, record.asset_id)] -= record.effect()[0]
    found = []
    for account in sorted(set(books.liquidity) | set(recorded) | set(converted)):
        stored = books.liquidity.get(account, ZERO)
        if stored != recorded.get(account, ZERO):
            detail = f"stored {stored}, the user's conversion records move it {recorded[account]}"
            found.append(finding("balances", "liquidity_mismatch", account, detail))
        if stored != -converted.get(account, ZERO):
            announced = -converted.get(account, ZERO)
            detail = f"stored {stored}, the conversions announced move it {announced}"
            found.append(finding("balances", "liquidity_plan_mismatch", account, detail))
    return found


# --- conservation: per currency, what is held against what came in less what went out -----


def conservation_findings(
    books: Books, plan: Plan, funds: dict[Account, Decimal], order_ids: set[str]
) -> list[Finding]:
    """Per currency: the users' balances (available and held) plus the exchange's
    liquidity parts equal what the load put in less what it took out: the traders'
    starting cash, the deposits less the withdrawals applied (`funds`), less what the
    completed orders of the load paid plus what they were paid (in their quote currency).
    Conversions, a buy's paid in another currency among them, move money between a user
    and the exchange and must net to zero in each currency."""
    held, came_in = _held(books), _came_in(books.orders.values(), plan, funds, order_ids)
    found = []
    for currency in sorted(set(held) | set(came_in)):
        have, want = held.get(currency, ZERO), came_in.get(currency, ZERO)
        if have != want:
            detail = f"balances and liquidity hold {have}; in less out is {want}"
            found.append(finding("balances", "not_conserved", currency, detail))
    return found


def currency_lines(books: Books) -> str:
    """Each currency's balances and liquidity, for the report's facts."""
    balances: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for (_, currency), balance in books.balances.items():
        if currency in MINOR_UNITS:
            balances[currency] += balance.available + balance.held
    liquidity: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for (_, currency), amount in books.liquidity.items():
        liquidity[currency] += amount
    return "; ".join(
        f"{c} balances {balances[c]} + liquidity {liquidity[c]}" for c in sorted(balances)
    )


def _held(books: Books) -> dict[str, Decimal]:
    held: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for (_, currency), balance in books.balances.items():
        if currency in MINOR_UNITS:
            held[currency] += balance.available + balance.held
    for (_, currency), amount in books.liquidity.items():
        held[currency] += amount
    return held


def _came_in(
    orders: Iterable[StoredOrder], plan: Plan, funds: dict[Account, Decimal], order_ids: set[str]
) -> dict[str, Decimal]:
    came_in: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for trader in plan.traders:
        came_in["USD"] += trader.usd
        for currency, amount in trader.cash:
            came_in[currency] += amount
    for (_, currency), amount in funds.items():
        came_in[currency] += amount
    for order in orders:
        if order.order_id in order_ids and order.status == "COMPLETED" and order.total_amount:
            total = order.total_amount
            came_in[order.quote_currency] += -total if order.is_buy else total
    return came_in


# --- conversions: each pair, its terms, its rate -------------------------------------------


def conversion_findings(books: Books, plan: Plan, spread_percent: Decimal) -> list[Finding]:
    """Each conversion's records (a Convert's `#sold` and `#bought`, a buy's paid in
    another currency `#fx-sold` and `#fx-bought`): both there, of their types, COMPLETED,
    each the other's counter (currency and amount), one rate and the configured spread on
    both, the amount bought the amount sold at the rate rounded down (or the amount sold
    the amount bought at the rate rounded up; for a buy paid in another currency only
    that), and the rate one that the load's published rates give (their ratio less the
    spread, rounded down to 10 places)."""
    pairs: dict[tuple[str, str, str], dict[str, Record]] = defaultdict(dict)
    for record in (r for r in books.records if r.is_conversion):
        conversion_id, _, leg = record.record_id.rpartition("#")
        prefix = PAID_IN if leg.startswith(PAID_IN) else ""
        pairs[(record.username, conversion_id, prefix)][leg.removeprefix(prefix)] = record
    quotes = Quotes(plan, spread_percent)
    found = []
    for (username, conversion_id, prefix), legs in sorted(pairs.items()):
        ids = (username, f"{conversion_id}#{prefix}" if prefix else conversion_id)
        found += [
            finding("conversions", kind, ids, detail)
            for kind, detail in _pair_problems(legs, quotes, paid_in=bool(prefix))
        ]
    return found


def _pair_problems(
    legs: dict[str, Record], quotes: Quotes, *, paid_in: bool = False
) -> list[tuple[str, str]]:
    """`paid_in`: a buy's paid in another currency, whose amount bought (the order's
    total) is fixed and the amount sold follows from it, rounded up; a Convert's the
    other way round."""
    if set(legs) != set(LEGS):
        return [("pair_incomplete", f"records {sorted(legs)}, expected {sorted(LEGS)}")]
    out, into = legs["sold"], legs["bought"]
    problems = [
        ("wrong_record", f"#{leg} is {legs[leg].kind} {legs[leg].status}")
        for leg, kind in LEGS.items()
        if (legs[leg].kind, legs[leg].status) != (kind, "COMPLETED")
    ]
    told = [
        (out.counter_currency, out.counter_amount, into.asset_id, into.amount),
        (into.counter_currency, into.counter_amount, out.asset_id, out.amount),
    ]
    problems += [
        ("counters_disagree", f"counter {c} {a}, but the other record is {ac} {aa}")
        for c, a, ac, aa in told
        if (c, a) != (ac, aa)
    ]
    terms = {(out.rate, out.spread_percent), (into.rate, into.spread_percent)}
    if terms != {(out.rate, quotes.spread_percent)}:
        problems.append(("wrong_terms", f"rate/spread {sorted(map(str, terms))}"))
    rate = out.rate
    if rate is None or problems:
        return problems
    sell, buy = out.asset_id, into.asset_id
    exact = out.amount == sold_for(into.amount, rate, sell)
    if not exact and (paid_in or into.amount != bought_for(out.amount, rate, buy)):
        detail = f"{out.amount} {sell} for {into.amount} {buy} does not follow from rate {rate}"
        problems.append(("amounts_off_rate", detail))
    if rate not in quotes.rates(sell, buy):
        detail = f"rate {rate} {buy} per {sell} is no published rates' ratio less the spread"
        problems.append(("rate_not_published", detail))
    return problems


@dataclass
class Quotes:
    """Every rate a conversion from one currency into another may have used: the ratio
    of two rates the load published (USD's is 1), less the spread, rounded down."""

    plan: Plan
    spread_percent: Decimal
    _known: dict[tuple[str, str], frozenset[Decimal]] = field(default_factory=dict)

    def rates(self, sell: str, buy: str) -> frozenset[Decimal]:
        if (sell, buy) not in self._known:
            with localcontext() as context:
                context.prec = 60
                kept = 1 - self.spread_percent / 100
                self._known[(sell, buy)] = frozenset(
                    (sold / bought * kept).quantize(RATE_STEP, rounding=ROUND_FLOOR)
                    for sold in self.plan.rates_of(sell)
                    for bought in self.plan.rates_of(buy)
                )
        return self._known[(sell, buy)]
