"""A conversion: one currency sold for another at the rate of the moment, in one write.

The user's balance in the currency sold goes down (CONVERSION_OUT, conditioned on what is
available) and the balance in the currency bought goes up (CONVERSION_IN); the exchange's
liquidity account in each moves the other way (the store derives it from the records);
both records carry the rate applied and the spread. The rates are read with the command's
records; the write depends on nothing else read (every condition is in it), so it only
moves the user's fence. The records' ids derive from the command id: a redelivery finds
them and is answered with the same event; another request with that id is refused.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from order_processor.domain.balances import BalanceTransaction, BalanceTransactionCreate
from order_processor.domain.balances import TransactionType as T
from order_processor.domain.base import record_id
from order_processor.domain.commands import Convert
from order_processor.domain.events import Event, conversion_event
from order_processor.domain.fx import Quote, RateUnavailable, quote
from order_processor.domain.money import CEILING
from order_processor.domain.ports import LedgerWrite, Snapshot
from order_processor.domain.steps import Step
from order_processor.exceptions import CommandRejected, OrderProcessorError, Reason
from order_processor.saga.decision import Decision, Limits
from order_processor.saga.funds import refused_funds
from order_processor.saga.records import conversion_pair


def sold_id(command_id: str) -> str:
    return record_id(command_id, "sold")


def terms(snapshot: Snapshot, sell: str, buy: str, at: datetime, limits: Limits) -> Quote:
    """The quote for `sell` into `buy` now, or the command's rejection (no fresh rate)."""
    limits.accepting(sell, buy)
    try:
        return quote(
            snapshot.rates,
            sell,
            buy,
            spread_percent=limits.fx_spread_percent,
            now=at,
            max_age=limits.fx_max_age,
            ahead=limits.rate_ahead,
        )
    except RateUnavailable as exc:
        raise CommandRejected(exc.reason, exc.message) from exc


def conversion_records(
    username: str, conversion_id: str, terms: Quote, sold: Decimal, bought: Decimal, note: str
) -> tuple[BalanceTransactionCreate, BalanceTransactionCreate]:
    """The two records of a conversion (ids: `conversion_id` with '#sold', '#bought')."""
    return conversion_pair(
        username,
        conversion_id,
        (terms.sold, sold),
        (terms.bought, bought),
        (terms.rate, terms.spread_percent),
        note,
    )


def convert(snapshot: Snapshot, command: Convert, at: datetime, limits: Limits) -> Decision:
    payload = command.payload
    stored = snapshot.funds
    if stored is not None:
        return _again(stored, command)
    quoted = terms(snapshot, payload.sell, payload.buy, at, limits)
    bought = quoted.bought_for(payload.amount)
    if bought <= 0:
        raise CommandRejected(
            Reason.CONVERSION_TOO_SMALL,
            f"{payload.amount} {payload.sell} buys less than one minor unit of {payload.buy}",
        )
    if bought >= CEILING:  # at a rate at the edge of what a rate may be
        raise CommandRejected(
            Reason.LIMIT_EXCEEDED,
            f"{payload.amount} {payload.sell} buys 10^15 {payload.buy} or more, "
            "more than an amount may be",
        )
    out, into = conversion_records(
        command.username,
        command.command_id,
        quoted,
        payload.amount,
        bought,
        f"convert {payload.amount} {payload.sell} to {payload.buy}",
    )
    write = LedgerWrite(
        username=command.username,
        fence=None,
        at=at,
        step=Step.CONVERTED,
        active_user=True,
        cash=(out, into),
    )
    event = conversion_event(command.command_id, out, into, at)
    return Decision(write, (event,), lambda refusal: _refused(out, refusal))


def _again(stored: BalanceTransaction, command: Convert) -> Decision:
    """The records of this command id exist: the same request is answered with its
    event again (rebuilt from the stored record), another is a conflicting duplicate."""
    payload = command.payload
    same = (stored.transaction_type, stored.currency, stored.amount, stored.counter_currency) == (
        T.CONVERSION_OUT,
        payload.sell,
        payload.amount,
        payload.buy,
    )
    if not same or stored.counter_amount is None:
        raise CommandRejected(
            Reason.CONFLICTING_DUPLICATE,
            f"command {command.command_id} was already applied as another transaction; "
            "it was not applied again",
        )
    return Decision(None, (stored_conversion_event(command.command_id, stored),))


def stored_conversion_event(conversion_id: str, stored: BalanceTransaction) -> Event:
    """A conversion's event again, from the stored record of the currency it sold (the
    redelivered command's answer; the analytics rebuild's conversions)."""
    out = BalanceTransactionCreate.model_validate(
        stored.model_dump(exclude={"created_at", "updated_at"})
    )
    into = out.model_copy(
        update={
            "transaction_type": T.CONVERSION_IN,
            "currency": out.counter_currency,
            "amount": out.counter_amount,
            "counter_currency": out.currency,
            "counter_amount": out.amount,
        }
    )
    return conversion_event(conversion_id, out, into, stored.created_at)


def _refused(out: BalanceTransactionCreate, refusal: OrderProcessorError) -> Decision:
    return refused_funds(out.username, f"{out.amount} {out.currency}", refusal, "the conversion")
