"""Conversions in the analytics views, per pair of currencies: how many, the amounts sold
and bought, and the spread the exchange kept.

A conversion is a `balance.converted` event (a Convert command) or a market buy paid in
another currency (its completed order carries `pay_currency`, `paid_amount`, `pay_rate`);
either is counted once, as the order's or the conversion's marker says. The spread kept is
valued in the currency bought at the mid rate that the recorded rate and spread imply:
sold x rate / (1 - spread) - bought. The rate applied was the mid less the spread rounded
down to its places (`domain.fx`), so the mid implied is that close to the one used (a
rate has ten places: a millionth of a cent on a thousand units), and the amount bought was
rounded against the customer, which the spread kept includes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from order_processor.analytics.amounts import COST_PLACES
from order_processor.analytics.amounts import EXACT as _EXACT

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Conversion:
    """One conversion: `sold` of `sell` for `bought` of `buy`; `spread` in `buy`."""

    sell: str
    buy: str
    sold: Decimal
    bought: Decimal
    spread: Decimal

    @classmethod
    def at(
        cls,
        sell: str,
        buy: str,
        sold: Decimal,
        bought: Decimal,
        rate: Decimal,
        spread_percent: Decimal,
    ) -> Conversion:
        """ValueError when the figures cannot be a conversion (one currency, an amount or
        a rate not above zero, a spread outside [0, 100))."""
        if sell == buy:
            raise ValueError(f"a conversion from {sell} to itself")
        if min(sold, bought, rate) <= 0 or not 0 <= spread_percent < HUNDRED:
            raise ValueError("a conversion's amounts and rate are above zero, its spread < 100")
        kept = _EXACT.subtract(1, _EXACT.divide(spread_percent, HUNDRED))
        mid = _EXACT.divide(rate, kept)
        spread = _EXACT.subtract(_EXACT.multiply(sold, mid), bought)
        return cls(sell, buy, sold, bought, spread.quantize(COST_PLACES, ROUND_HALF_EVEN, _EXACT))


@dataclass
class Exchanged:
    """The conversions of one pair (sell, buy), summed."""

    conversions: int = 0
    sold: Decimal = Decimal(0)
    bought: Decimal = Decimal(0)
    spread: Decimal = Decimal(0)  # in the currency bought

    def add(self, conversion: Conversion) -> None:
        self.conversions += 1
        self.sold = _EXACT.add(self.sold, conversion.sold)
        self.bought = _EXACT.add(self.bought, conversion.bought)
        self.spread = _EXACT.add(self.spread, conversion.spread)

    def figures(self) -> tuple[int, Decimal, Decimal, Decimal]:
        return (self.conversions, self.sold, self.bought, self.spread)
