"""The ledger audit's cash checks, each per currency.

A user's cash items are their balances (`BALANCE#<CUR>`), their part of the exchange's
liquidity account in each currency (`LIQUIDITY#<CUR>`, moved opposite to the user's
conversions) and their records (`TX#`, USD when they name no currency). Per user:

- each balance equals the sum of its COMPLETED records in that currency, never negative;
- each liquidity part equals the negated sum of the user's conversion records in it;
- each conversion has both records (`<id>#sold`, `<id>#bought`; a buy paid in another
  currency `<order id>#fx-sold`, `#fx-bought`), whose counter fields agree with each
  other, and whose amounts follow from the recorded rate.

Across users, per currency: what the users' balances hold plus what the exchange's
liquidity parts hold equals what came in less what went out (every record's effect but a
conversion's): conversions net to zero in each currency. Given the per-user checks this
must hold; it is the statement the audit reports per currency, and a break of it names
the currency whatever else the reads found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from order_processor.domain.balances import BalanceTransaction, TransactionStatus
from order_processor.domain.balances import TransactionType as T
from order_processor.domain.currencies import minor_unit
from order_processor.domain.fx import follows_from_rate
from order_processor.domain.money import exact_total
from order_processor.ops.mismatch import Mismatch
from order_processor.store import keys

ZERO = Decimal(0)
# The two records of a conversion: their id suffix and their type.
LEGS = {"sold": T.CONVERSION_OUT, "bought": T.CONVERSION_IN}
PAID_IN = "fx-"  # the legs' prefix when a buy paid in another currency converts
EVERYONE = "(all users)"  # the username of a finding about a currency, not a user


def shown(amount: Decimal, currency: str) -> str:
    """An amount as the currency writes it (5 EUR is 5.00), or as it is when it has more
    places than the currency allows (a mismatch to show, not to round away)."""
    padded = amount.quantize(minor_unit(currency))
    return format(padded if padded == amount else amount, "f")


@dataclass
class CurrencyTotals:
    """One currency across the users read: their balances (available and held), the
    exchange's liquidity parts, and what came in less what went out."""

    balances: Decimal = ZERO
    liquidity: Decimal = ZERO
    flows: Decimal = ZERO

    @property
    def conserved(self) -> bool:
        return exact_total([self.balances, self.liquidity]) == self.flows

    def add(self, other: CurrencyTotals) -> None:
        self.balances = exact_total([self.balances, other.balances])
        self.liquidity = exact_total([self.liquidity, other.liquidity])
        self.flows = exact_total([self.flows, other.flows])

    def as_dict(self, currency: str) -> dict[str, Any]:
        return {
            "balances": shown(self.balances, currency),
            "liquidity": shown(self.liquidity, currency),
            "flows": shown(self.flows, currency),
            "conserved": self.conserved,
        }

    def line(self, currency: str) -> str:
        held = exact_total([self.balances, self.liquidity])
        return (
            f"{currency}: users' balances {shown(self.balances, currency)} + the exchange's "
            f"liquidity {shown(self.liquidity, currency)} = {shown(held, currency)}; "
            f"in less out {shown(self.flows, currency)}"
        )


@dataclass(frozen=True)
class CashBooks:
    """One user's cash items, as one read found them."""

    username: str
    balances: dict[str, tuple[Decimal, Decimal]]  # currency -> (available, held)
    liquidity: dict[str, Decimal]  # currency -> the exchange's part with this user
    records: list[BalanceTransaction]

    @classmethod
    def of(
        cls,
        username: str,
        balance_items: Iterable[dict[str, Any]],
        liquidity_items: Iterable[dict[str, Any]],
        records: list[BalanceTransaction],
    ) -> CashBooks:
        balances = {
            str(i["SK"]).removeprefix(keys.BALANCE_PREFIX): (
                Decimal(i.get("available", 0)),
                Decimal(i.get("held", 0)),
            )
            for i in balance_items
        }
        liquidity = {
            str(i["SK"]).removeprefix(keys.LIQUIDITY_PREFIX): Decimal(i.get("amount", 0))
            for i in liquidity_items
        }
        return cls(username, balances, liquidity, records)

    @property
    def completed(self) -> list[BalanceTransaction]:
        return [r for r in self.records if r.status is TransactionStatus.COMPLETED]

    def totals(self) -> dict[str, CurrencyTotals]:
        found: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
        for currency, (available, held) in self.balances.items():
            found[currency].balances = exact_total([available, held])
        for currency, amount in self.liquidity.items():
            found[currency].liquidity = amount
        for record in self.completed:
            if not record.transaction_type.is_conversion:
                total = found[record.currency]
                total.flows = exact_total([total.flows, record.total_delta])
        return dict(found)


def cash_mismatches(books: CashBooks) -> list[Mismatch]:
    return [
        *_balance_mismatches(books),
        *_liquidity_mismatches(books),
        *conversion_mismatches(books),
    ]


def _balance_mismatches(books: CashBooks) -> list[Mismatch]:
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for record in books.completed:
        pair = sums[record.currency]
        pair[0] = exact_total([pair[0], record.available_delta])
        pair[1] = exact_total([pair[1], record.held_delta])
    found = []
    for currency in sorted(set(books.balances) | set(sums)):
        stored = books.balances.get(currency)
        want = tuple(sums.get(currency, (ZERO, ZERO)))
        if stored is None and any(want):
            detail = f"{currency}: transactions without a balance item"
            found.append(Mismatch("balance", books.username, detail, (currency,)))
            continue
        have = stored or (ZERO, ZERO)
        if have == want and min(have) >= 0:
            continue
        detail = (
            f"{currency}: stored {shown(have[0], currency)} available / "
            f"{shown(have[1], currency)} held, transactions sum to "
            f"{shown(want[0], currency)} / {shown(want[1], currency)}"
        )
        found.append(Mismatch("balance", books.username, detail, (currency,)))
    return found


def _liquidity_mismatches(books: CashBooks) -> list[Mismatch]:
    """The exchange's part with this user, in each currency, against the user's
    conversions: it moved opposite to each of them."""
    moved: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for record in books.completed:
        if record.transaction_type.is_conversion:
            moved[record.currency] = exact_total([moved[record.currency], -record.total_delta])
    found = []
    for currency in sorted(set(books.liquidity) | set(moved)):
        have, want = books.liquidity.get(currency, ZERO), moved.get(currency, ZERO)
        if have != want:
            detail = (
                f"{currency}: the exchange's part is {shown(have, currency)}, the user's "
                f"conversions move it {shown(want, currency)}"
            )
            found.append(Mismatch("liquidity", books.username, detail, (currency,)))
    return found


def conversion_mismatches(books: CashBooks) -> list[Mismatch]:
    """Each conversion's pair of records: both there, of their types, agreeing on each
    other's amounts, currencies, rate and spread, the amounts following from the rate."""
    pairs: dict[tuple[str, str], dict[str, BalanceTransaction]] = defaultdict(dict)
    for record in books.records:
        if record.transaction_type.is_conversion:
            conversion_id, _, leg = record.transaction_id.rpartition("#")
            prefix = PAID_IN if leg.startswith(PAID_IN) else ""
            pairs[(conversion_id or leg, prefix)][leg.removeprefix(prefix)] = record
    found = []
    for (conversion_id, _), legs in sorted(pairs.items()):
        problems = _pair_problems(legs)
        if problems:
            ids = (conversion_id, *sorted(r.transaction_id for r in legs.values()))
            found.append(Mismatch("conversion", books.username, "; ".join(problems), ids))
    return found


def _pair_problems(legs: dict[str, BalanceTransaction]) -> list[str]:
    unnamed = sorted(set(legs) - set(LEGS))
    if unnamed:
        return [f"a conversion record named {unnamed[0]!r}, not one of {sorted(LEGS)}"]
    missing = [leg for leg in LEGS if leg not in legs]
    if missing:
        return [f"its {missing[0]} record is missing"]
    problems = [
        f"#{leg} is a {legs[leg].transaction_type.value} {legs[leg].status.value}"
        for leg, kind in LEGS.items()
        if (legs[leg].transaction_type, legs[leg].status) != (kind, TransactionStatus.COMPLETED)
    ]
    out, into = legs["sold"], legs["bought"]
    problems += _counter_problems(out, into)
    if not problems and not _follows(out, into):
        problems.append(
            f"{shown(out.amount, out.currency)} {out.currency} for "
            f"{shown(into.amount, into.currency)} {into.currency} does not follow from "
            f"the rate {out.rate}"
        )
    return problems


def _counter_problems(out: BalanceTransaction, into: BalanceTransaction) -> list[str]:
    sides = (
        ("sold", (out.currency, out.amount), (into.counter_currency, into.counter_amount)),
        ("bought", (into.currency, into.amount), (out.counter_currency, out.counter_amount)),
    )
    problems = [
        f"#{leg} is {_money(*own)}, its counter record says {_money(*told)}"
        for leg, own, told in sides
        if own != told
    ]
    if (out.rate, out.spread_percent) != (into.rate, into.spread_percent):
        problems.append(
            f"#sold's rate and spread are {out.rate} / {out.spread_percent} %, "
            f"#bought's {into.rate} / {into.spread_percent} %"
        )
    if out.currency == into.currency:
        problems.append(f"sold and bought in one currency, {out.currency}")
    return problems


def _money(currency: str | None, amount: Decimal | None) -> str:
    return f"{amount} {currency}"


def _follows(out: BalanceTransaction, into: BalanceTransaction) -> bool:
    if out.rate is None:
        return False
    return follows_from_rate(out.amount, into.amount, out.rate, out.currency, into.currency)


def conservation_mismatches(totals: dict[str, CurrencyTotals]) -> list[Mismatch]:
    """Per currency, across every user read: balances plus liquidity against what came
    in less what went out."""
    return [
        Mismatch("conservation", EVERYONE, totals[currency].line(currency), (currency,))
        for currency in sorted(totals)
        if not totals[currency].conserved
    ]
