"""What happened in each currency during the demo, in words for its summary: deposits,
withdrawals and conversions counted from the events applied (`Flows`), what users hold
and the exchange's liquidity read from the users table at the close (`holdings`), and the
orders of the assets quoted outside USD from the orders table (`quoted_lines`)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from order_processor.domain.currencies import BASE_CURRENCY, minor_unit
from order_processor.domain.events import Event, EventType
from order_processor.store import keys
from order_processor.store.dynamo import all_items, to_attribute


@dataclass
class Flows:
    """Per currency, from the events applied: deposits, withdrawals and the two sides of
    conversions (how many and how much)."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (currency, flow)
    amounts: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def on_event(self, event: Event) -> None:
        data = event.data
        if event.event_type is EventType.BALANCE_DEPOSITED:
            self._add(str(data.get("currency", BASE_CURRENCY)), "deposited", data["amount"])
        elif event.event_type is EventType.BALANCE_WITHDRAWN:
            self._add(str(data.get("currency", BASE_CURRENCY)), "withdrawn", data["amount"])
        elif event.event_type is EventType.BALANCE_CONVERTED:
            self._add(str(data["sell"]), "sold", data["sold"])
            self._add(str(data["buy"]), "bought", data["bought"])

    def _add(self, currency: str, flow: str, amount: object) -> None:
        self.counts[(currency, flow)] += 1
        self.amounts[(currency, flow)] += Decimal(str(amount))

    def currencies(self) -> set[str]:
        return {currency for currency, _ in self.counts}


@dataclass
class Holding:
    """What users hold of a currency and the exchange's liquidity account in it."""

    available: Decimal = Decimal(0)
    held: Decimal = Decimal(0)
    liquidity: Decimal = Decimal(0)


async def holdings(client: Any, users_table: str) -> dict[str, Holding]:
    """Every balance and liquidity part in the users table, summed per currency (one
    scan: the demo's tables are small)."""
    found: dict[str, Holding] = defaultdict(Holding)
    arguments = {
        "TableName": users_table,
        "FilterExpression": "begins_with(SK, :balance) OR begins_with(SK, :liquidity)",
        "ExpressionAttributeValues": {
            ":balance": to_attribute(keys.BALANCE_PREFIX),
            ":liquidity": to_attribute(keys.LIQUIDITY_PREFIX),
        },
    }
    async for item in all_items(client, "scan", arguments):
        kind, currency = str(item["SK"]).split("#", 1)
        holding = found[currency]
        if kind + "#" == keys.BALANCE_PREFIX:
            holding.available += Decimal(item.get("available", 0))
            holding.held += Decimal(item.get("held", 0))
        else:
            holding.liquidity += Decimal(item.get("amount", 0))
    return dict(found)


async def quoted_lines(client: Any, orders_table: str, quoted: Mapping[str, str]) -> list[str]:
    """Per asset quoted outside USD, in words: its orders, those filled and their value in
    the quote currency, and the market buys paid from another currency (one scan)."""
    orders: Counter[str] = Counter()
    filled: Counter[str] = Counter()
    value: dict[str, Decimal] = defaultdict(Decimal)
    paid_from: dict[str, Counter[str]] = defaultdict(Counter)
    ids = {f":a{n}": to_attribute(asset) for n, asset in enumerate(sorted(quoted))}
    arguments = {
        "TableName": orders_table,
        "FilterExpression": f"asset_id IN ({', '.join(ids)})",
        "ExpressionAttributeValues": ids,
    }
    async for order in all_items(client, "scan", arguments):
        asset = str(order["asset_id"])
        orders[asset] += 1
        if order.get("status") == "COMPLETED":
            filled[asset] += 1
            value[asset] += Decimal(order.get("total_amount") or 0)
            if order.get("pay_currency") not in (None, quoted[asset]):
                paid_from[asset][str(order["pay_currency"])] += 1
    lines = []
    for asset, quote in sorted(quoted.items()):
        paid = paid_from[asset]
        by = ", ".join(f"{n} in {c}" for c, n in sorted(paid.items()))
        lines.append(
            f"{asset}, quoted in {quote}: {_many(orders[asset], 'order')}, {filled[asset]} "
            f"filled for {money(value[asset], quote)}; {_many(paid.total(), 'market buy')} "
            f"paid from another currency{f' ({by})' if by else ''}"
        )
    return lines


def money(amount: Decimal, currency: str) -> str:
    """12,345.60 EUR; 447,761 JPY."""
    return f"{format(amount.quantize(minor_unit(currency)), ',f')} {currency}"


def currency_lines(
    flows: Flows, held: Mapping[str, Holding], rates: Mapping[str, Decimal], updates: int
) -> list[str]:
    """The summary's currency section, in words: the rates at the close, then two lines
    for each currency that anything happened in (what moved; what is held)."""
    quoted = ", ".join(f"{c} {format(r.normalize(), 'f')}" for c, r in sorted(rates.items()))
    lines = [f"exchange rates at the close, USD per unit: {quoted} ({updates} updates sent)"]
    for currency in sorted(flows.currencies() | set(held), key=_base_first):
        moved, kept = _currency_parts(flows, held, currency)
        lines += [f"  {currency}: {moved}", f"       {kept}"]
    return lines


def _currency_parts(flows: Flows, held: Mapping[str, Holding], currency: str) -> tuple[str, str]:
    def count(name: str) -> int:
        return flows.counts[(currency, name)]

    def amount(name: str) -> str:
        return money(flows.amounts.get((currency, name), Decimal(0)), currency)

    holding = held.get(currency, Holding())
    moved = (
        f"{_many(count('deposited'), 'deposit')} ({amount('deposited')}), "
        f"{_many(count('withdrawn'), 'withdrawal')} ({amount('withdrawn')}); "
        f"conversions: {count('sold')} sold {amount('sold')}, "
        f"{count('bought')} bought {amount('bought')}"
    )
    kept = (
        f"users hold {money(holding.available + holding.held, currency)} "
        f"({money(holding.held, currency)} of it held for orders); "
        + _liquidity(holding.liquidity, currency)
    )
    return moved, kept


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _liquidity(amount: Decimal, currency: str) -> str:
    """The exchange's liquidity account moves opposite to its customers' conversions:
    Convert commands and market buys paid from another currency alike."""
    moved = "from conversions and buys paid in another currency"
    if amount > 0:
        return f"the exchange's liquidity took in {money(amount, currency)} net {moved}"
    if amount < 0:
        return f"the exchange's liquidity paid out {money(-amount, currency)} net {moved}"
    return "the exchange's liquidity is even"


def _base_first(currency: str) -> tuple[bool, str]:
    return currency != BASE_CURRENCY, currency
