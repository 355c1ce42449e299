"""The recount's orders in other currencies: assets quoted in EUR or JPY (their orders hold
and pay in that currency) and market buys paid in another currency than their asset's
quote (`pay_currency`: that currency sold for exactly the order's total, at the order's
`pay_rate`, in the order's one write). Each stored order as its listing and its request
say; a buy paid in another currency that failed failed for want of it; what the completed
ones moved between each user and the exchange's liquidity; and their events telling the
stored amounts. (Their records, totals and the conversion's pair are checked with every
order's and every conversion's, in `books` and `cash`.)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.chaos.books import ZERO, Books, StoredOrder
from tests.chaos.findings import Finding, finding
from tests.chaos.load import Journal, Plan

Account = tuple[str, str]  # (username, currency)
# A market buy paid in another currency fails only for want of that currency: the rates
# stay fresh all the run, and the load keeps every order under the value limit.
PAID_IN_FAILURES = frozenset({"INSUFFICIENT_BALANCE"})
# What an order's event tells of its money, compared with the stored order.
MONEY_FIELDS = (
    "quote_currency",
    "total_amount",
    "pay_currency",
    "paid_amount",
    "pay_rate",
    "pay_spread_percent",
)


def quote_findings(journal: Journal, books: Books, plan: Plan) -> list[Finding]:
    """Each order of the load stored in its listing's quote currency, paid in what its
    request asked; a failed buy paid in another currency failed INSUFFICIENT_BALANCE."""
    quotes = {x.asset_id: x.quote for x in plan.listings}
    requests = {intent.order_id: intent for _, intent in journal.places()}
    found = []
    for order in books.orders.values():
        intent = requests.get(order.order_id)
        if intent is None:
            continue  # reported by the commands check
        stored = (order.quote_currency, order.pay_currency)
        wanted = (quotes.get(order.asset_id), intent.pay_currency)
        if stored != wanted:
            detail = f"quote/pay currency {stored}, expected {wanted}"
            found.append(finding("quoted", "wrong_currencies", order.order_id, detail))
        failed = order.failure_reason if order.status == "FAILED" else None
        if order.paid_in and failed and failed not in PAID_IN_FAILURES:
            detail = f"paid in {order.pay_currency}: FAILED {failed}"
            found.append(finding("quoted", "unexpected_failure", order.order_id, detail))
    return found


def paid_in_by_account(books: Books, order_ids: set[str]) -> dict[Account, Decimal]:
    """What the completed buys of the load paid in another currency moved each user's
    balances by through their conversion: less what they paid in the pay currency, plus
    their total in the quote currency (spent at once on the asset). The exchange's
    liquidity parts move the opposite way."""
    totals: dict[Account, Decimal] = {}
    for order in books.orders.values():
        paid, total = order.paid_amount, order.total_amount
        if not order.paid_in or order.status != "COMPLETED" or order.order_id not in order_ids:
            continue
        if paid is None or total is None:
            continue  # a finding of the effects check
        for currency, amount in ((str(order.pay_currency), -paid), (order.quote_currency, total)):
            account = (order.username, currency)
            totals[account] = totals.get(account, ZERO) + amount
    return totals


def money_problems(order: StoredOrder, body: dict[str, Any]) -> list[str]:
    """Where an order's event, of its stored state, tells other money than is stored."""
    data = body.get("data", {})
    problems = []
    for name in MONEY_FIELDS:
        stored, told = getattr(order, name), data.get(name)
        if _text(stored) != _text(told):
            problems.append(f"{name}: the event says {told}, stored {stored}")
    return problems


def _text(value: object) -> str | None:
    """A value as comparable text: numbers whatever their trailing zeros."""
    if value is None:
        return None
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except ArithmeticError:
        return str(value)


def summary(books: Books, order_ids: set[str]) -> str:
    """For the report's facts: the orders in each quote currency but USD, and the buys
    paid in another currency, by status."""
    quoted: dict[str, int] = {}
    paid: dict[str, int] = {}
    for order in (o for o in books.orders.values() if o.order_id in order_ids):
        if order.quote_currency != "USD":
            quoted[order.quote_currency] = quoted.get(order.quote_currency, 0) + 1
        if order.paid_in:
            paid[order.status] = paid.get(order.status, 0) + 1
    by_quote, by_status = dict(sorted(quoted.items())), dict(sorted(paid.items()))
    return f"orders by quote {by_quote}; paid in another currency {by_status}"
