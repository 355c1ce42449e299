"""What an order's decisions need of the currencies: its quote currency's minor unit, the
value limit (configured in the base currency) in its quote currency at the rate of the
moment, and the rates a placement must find fresh."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from order_processor.domain.currencies import BASE_CURRENCY, minor_unit
from order_processor.domain.fx import RateUnavailable, fresh_rate, limit_in
from order_processor.domain.orders import Order
from order_processor.domain.ports import Snapshot
from order_processor.exceptions import CommandRejected
from order_processor.saga.decision import Limits


def unit_of(order: Order) -> Decimal:
    """The smallest amount an order's money moves by: its quote currency's minor unit."""
    return minor_unit(order.quote_currency)


def value_limit(snapshot: Snapshot, currency: str, at: datetime, limits: Limits) -> Decimal | None:
    """The order value limit in `currency` now; None without a fresh rate for it."""
    if currency == BASE_CURRENCY:
        return limits.max_order_value
    try:
        rate = fresh_rate(snapshot.rates, currency, at, limits.fx_max_age, limits.rate_ahead)
    except RateUnavailable:
        return None
    return limit_in(limits.max_order_value, rate, currency)


def require_rates(snapshot: Snapshot, currencies: set[str], at: datetime, limits: Limits) -> None:
    """CommandRejected unless each currency is enabled and has a fresh rate: nobody trades
    on a stale rate."""
    limits.accepting(*sorted(currencies))
    for currency in sorted(currencies):
        try:
            fresh_rate(snapshot.rates, currency, at, limits.fx_max_age, limits.rate_ahead)
        except RateUnavailable as exc:
            raise CommandRejected(exc.reason, exc.message) from exc
