"""The ledger audit's cash checks per currency, over a users table built in memory: the
items the store writes (records through `transaction_put`, balances and liquidity parts
as their records leave them), read back by the real auditor through a fake client. A
conversion quoted at real rates passes; a liquidity part one minor unit off, a bought
amount the rate does not give, a pair with one record missing, each fail, named."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from order_processor.domain.assets import AssetTransaction
from order_processor.domain.balances import (
    BalanceTransaction,
    BalanceTransactionCreate,
    TransactionType,
)
from order_processor.domain.commands import Deposit
from order_processor.domain.fx import ExchangeRate, quote
from order_processor.ops.cash_audit import CashBooks, conversion_mismatches
from order_processor.ops.ledger_audit import AuditReport, LedgerAuditor, order_mismatches
from order_processor.saga.convert import conversion_records
from order_processor.store import keys
from order_processor.store.balances import transaction_put
from order_processor.store.dynamo import Page, from_attribute, to_item
from tests.unit.fakes import MemoryLedger
from tests.unit.test_currencies import USER, buy, funds, quoted, world

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
RATES = {
    c: ExchangeRate(currency=c, rate=Decimal(r), as_of=NOW)
    for c, r in (("EUR", "1.0842"), ("GBP", "1.2710"), ("JPY", "0.0067"))
}
Item = dict[str, Any]


def deposit(username: str, amount: str, currency: str = "USD") -> BalanceTransactionCreate:
    return BalanceTransactionCreate(
        transaction_id=f"dep-{username}-{currency}",
        username=username,
        transaction_type=TransactionType.DEPOSIT,
        currency=currency,
        amount=amount,
    )


def converted(
    username: str, conversion_id: str, amount: str, sell: str, buy: str
) -> tuple[BalanceTransactionCreate, BalanceTransactionCreate]:
    """A conversion's two records as the saga writes them, at RATES less 0.50 %."""
    terms = quote(
        RATES, sell, buy, spread_percent=Decimal("0.50"), now=NOW, max_age=timedelta(minutes=5)
    )
    sold = Decimal(amount)
    return conversion_records(
        username, conversion_id, terms, sold, terms.bought_for(sold), "convert"
    )


def items_of(records: list[BalanceTransactionCreate]) -> list[Item]:
    """The users table the store leaves: each record, each balance its records sum to
    (a USD one for every user), each liquidity part opposite the user's conversions."""
    balances: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 2)
    liquidity: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    table = [transaction_put("users", r, NOW)["Item"] for r in records]
    for r in records:
        balances.setdefault((r.username, "USD"), [Decimal("0.00")] * 2)
        pair = balances[(r.username, r.currency)]
        pair[0] += r.available_delta
        pair[1] += r.held_delta
        if r.transaction_type.is_conversion:
            liquidity[(r.username, r.currency)] -= r.available_delta
    for (user, currency), (available, held) in balances.items():
        key = keys.balance_key(user, currency)
        table.append({**key, **to_item({"available": available, "held": held})})
    for (user, currency), amount in liquidity.items():
        table.append({**keys.liquidity_key(user, currency), **to_item({"amount": amount})})
    return table


@dataclass
class UsersTable:
    """What the auditor asks of DynamoDB (a Scan for the users, a Query of a partition),
    answered from items in memory; and no orders."""

    items: list[Item]

    async def scan(self, **request: Any) -> dict[str, Any]:
        wanted = request["ExpressionAttributeValues"][":balance"]
        return {"Items": [{"PK": i["PK"]} for i in self.items if i["SK"] == wanted]}

    async def query(self, **request: Any) -> dict[str, Any]:
        pk = request["ExpressionAttributeValues"][":pk"]
        return {"Items": [i for i in self.items if i["PK"] == pk]}

    async def get_orders_by_user(self, username: str, **_: Any) -> Page[Any]:
        return Page([])


async def audit(items: list[Item]) -> AuditReport:
    table = UsersTable(items)
    auditor = LedgerAuditor(client=table, users_table="users", orders=table)  # type: ignore[arg-type]
    return await auditor.run()


def trading() -> list[BalanceTransactionCreate]:
    """alice: 1,000 USD in, 100 USD into EUR; bob: 500 EUR in, 300 EUR into JPY, 2,000
    JPY back into GBP."""
    return [
        deposit("alice_01", "1000.00"),
        *converted("alice_01", "c-alice", "100.00", "USD", "EUR"),
        deposit("bob_0001", "500.00", "EUR"),
        *converted("bob_0001", "c-bob-1", "300.00", "EUR", "JPY"),
        *converted("bob_0001", "c-bob-2", "2000", "JPY", "GBP"),
    ]


def liquidity_item(items: list[Item], username: str, currency: str) -> Item:
    key = keys.liquidity_key(username, currency)
    return next(i for i in items if (i["PK"], i["SK"]) == (key["PK"], key["SK"]))


def record_item(items: list[Item], record_id: str) -> Item:
    return next(i for i in items if i["SK"] == {"S": keys.TRANSACTION_PREFIX + record_id})


async def test_conversions_at_their_rates_conserve_every_currency() -> None:
    report = await audit(items_of(trading()))

    assert report.passed, [str(m) for m in report.mismatches]
    # 100 USD at 0.9177273565 (1 / 1.0842 less 0.50 %) bought 91.77 EUR; 300 EUR at
    # 161.0117910447 bought 48,303 JPY; 2,000 JPY at 0.0052450826 bought 10.49 GBP.
    assert report.as_dict()["currencies"] == {
        "EUR": {"balances": "291.77", "liquidity": "208.23", "flows": "500.00", "conserved": True},
        "GBP": {"balances": "10.49", "liquidity": "-10.49", "flows": "0.00", "conserved": True},
        "JPY": {"balances": "46303", "liquidity": "-46303", "flows": "0", "conserved": True},
        "USD": {"balances": "900.00", "liquidity": "100.00", "flows": "1000.00", "conserved": True},
    }
    assert report.transactions == 8


@pytest.mark.parametrize(
    ("username", "currency", "unit"), [("bob_0001", "JPY", "1"), ("alice_01", "EUR", "0.01")]
)
async def test_a_liquidity_part_one_minor_unit_off_is_found_in_its_currency(
    username: str, currency: str, unit: str
) -> None:
    items = items_of(trading())
    part = liquidity_item(items, username, currency)
    part["amount"] = {"N": str(Decimal(from_attribute(part["amount"])) + Decimal(unit))}

    report = await audit(items)

    assert [(m.kind, m.username, m.ids) for m in report.mismatches] == [
        ("liquidity", username, (currency,)),
        ("conservation", "(all users)", (currency,)),
    ]
    assert not report.currencies[currency].conserved
    assert all(report.currencies[c].conserved for c in report.currencies if c != currency)


async def test_a_bought_amount_the_recorded_rate_does_not_give_is_found() -> None:
    """alice's 100.00 USD bought 91.77 EUR at its rate; 91.78 recorded on both records,
    the balance and the liquidity with it: only the rate tells."""
    records = trading()
    out, into = records[1], records[2]
    records[1] = out.model_copy(update={"counter_amount": into.amount + Decimal("0.01")})
    records[2] = into.model_copy(update={"amount": into.amount + Decimal("0.01")})

    report = await audit(items_of(records))

    assert [str(m) for m in report.mismatches] == [
        "conversion: alice_01: 100.00 USD for 91.78 EUR does not follow from the rate "
        f"{out.rate} [c-alice, c-alice#bought, c-alice#sold]"
    ]


@pytest.mark.parametrize("missing", ["sold", "bought"])
async def test_a_conversion_with_one_of_its_records_missing_is_found(missing: str) -> None:
    items = items_of(trading())
    items.remove(record_item(items, f"c-bob-1#{missing}"))

    report = await audit(items)

    kept = "bought" if missing == "sold" else "sold"
    conversion = [m for m in report.mismatches if m.kind == "conversion"]
    assert [(m.detail, m.ids) for m in conversion] == [
        (f"its {missing} record is missing", ("c-bob-1", f"c-bob-1#{kept}"))
    ]
    # The balance and the liquidity part still show the record: they disagree with it.
    assert {m.kind for m in report.mismatches} == {"conversion", "balance", "liquidity"}


async def test_counter_fields_that_disagree_are_found() -> None:
    records = trading()
    records[1] = records[1].model_copy(update={"counter_currency": "GBP"})

    report = await audit(items_of(records))

    assert [(m.kind, m.detail) for m in report.mismatches] == [
        (
            "conversion",
            f"#bought is {records[2].amount} EUR, its counter record says {records[2].amount} GBP",
        )
    ]


# --- orders in other currencies, as the saga (in memory) writes them -----------------------


def order_records(
    ledger: MemoryLedger, order_id: str
) -> tuple[list[BalanceTransaction], list[AssetTransaction]]:
    cash = [r for r in ledger.cash_records.values() if r.reference_id == order_id]
    trades = [t for t in ledger.asset_records.values() if t.order_id == order_id]
    return cash, trades


async def test_orders_quoted_and_paid_in_other_currencies_pass_as_the_saga_wrote_them() -> None:
    """A buy of a yen asset (its total rounded up to the yen: 14,999.0005 is 15,000, where
    the cent would be 14,999.01) and a buy of a euro asset
    paid in dollars (its conversion's records `#fx-sold`, `#fx-bought`): no mismatch; a
    paid amount a cent short, or the conversion's records missing, are found."""
    saga, ledger, _ = world(usd="1000")
    await saga.handle(funds(Deposit, "100000", "JPY"))
    quoted(ledger, "BTCJPY", "14999000.5", "JPY")
    quoted(ledger, "BTCEUR", "100", "EUR")
    await saga.handle(buy("BTCJPY", "0.001", order_id="o-yen"))
    await saga.handle(buy("BTCEUR", "2", order_id="o-paid", pay_currency="USD"))
    yen, paid = ledger.orders["o-yen"], ledger.orders["o-paid"]
    assert (yen.total_amount, paid.paid_amount) == (Decimal(15000), Decimal("217.09"))

    for order in (yen, paid):
        assert order_mismatches(order, *order_records(ledger, order.order_id)) == []
    cash, trades = order_records(ledger, "o-paid")
    assert conversion_mismatches(CashBooks(USER, {}, {}, cash)) == []

    short = paid.evolve(paid_amount=Decimal("217.08"))
    assert [(m.kind, m.detail) for m in order_mismatches(short, cash, trades)] == [
        ("order_amounts", "o-paid#fx-sold is 217.09 USD, expected 217.08 USD")
    ]
    unconverted = [r for r in cash if not r.transaction_type.is_conversion]
    assert [m.kind for m in order_mismatches(paid, unconverted, trades)] == ["order_records"]
    alone = [r for r in cash if r.transaction_id != "o-paid#fx-bought"]
    assert [m.detail for m in conversion_mismatches(CashBooks(USER, {}, {}, alone))] == [
        "its bought record is missing"
    ]
