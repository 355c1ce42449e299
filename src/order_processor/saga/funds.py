"""Deposits and withdrawals: one write each, idempotent by command id.

The balance change in the command's currency, its DEPOSIT/WITHDRAW record (id = command
id, conditioned on its absence), the day's running total (checked against the daily
limit) and a check that the user exists and is active commit together; every condition
is in the write, so it only moves the user's fence. In the base currency it needs no read
first; in another, the currency's rate is read first, because the daily limits are set in
the base currency and every currency counts against the same one, at its value at the rate
of the moment (the rate read, no older than the configured age: without one the command is
refused, FX_RATE_MISSING or FX_RATE_STALE), rounded up to the cent: a count per currency,
each at the whole limit, would let a day's withdrawals be the limit times the currencies
held. A record already there (a redelivery, or an id reused) is then read: the
same request is answered with its event again, another is a conflicting duplicate,
applied never.
"""

from __future__ import annotations

from datetime import datetime

from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.commands import Deposit, Withdraw
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.events import funds_event
from order_processor.domain.fx import RateUnavailable, fresh_rate
from order_processor.domain.money import buy_cost
from order_processor.domain.ports import DailyCount, LedgerWrite, Snapshot
from order_processor.domain.steps import Step
from order_processor.exceptions import (
    BalanceNotFoundException,
    CommandRejected,
    EntityAlreadyExistsException,
    InactiveUserException,
    InsufficientBalanceException,
    LimitExceededException,
    OrderProcessorError,
    Reason,
    UserNotFoundException,
)
from order_processor.saga.decision import Decision, Limits


def move_funds(
    snapshot: Snapshot | None, command: Deposit | Withdraw, at: datetime, limits: Limits
) -> Decision:
    """`snapshot`: None at first, when the write is blind (the base currency); after the
    write found the command id used, the record's read."""
    deposit = isinstance(command, Deposit)
    payload = command.payload
    record = BalanceTransactionCreate(
        transaction_id=command.command_id,
        username=command.username,
        transaction_type=TransactionType.DEPOSIT if deposit else TransactionType.WITHDRAW,
        currency=payload.currency,
        amount=payload.amount,
        reference_id=command.command_id,
    )
    stored = snapshot.funds if snapshot is not None else None
    if stored is not None:
        if (stored.transaction_type, stored.currency, stored.amount) != (
            record.transaction_type,
            record.currency,
            record.amount,
        ):
            raise CommandRejected(
                Reason.CONFLICTING_DUPLICATE,
                f"command {record.transaction_id} was already applied as a "
                f"{stored.transaction_type} of {stored.amount} {stored.currency}; "
                "it was not applied again",
            )
        return Decision(None, (funds_event(record, stored.created_at),))  # a redelivery
    limits.accepting(record.currency)
    limit = limits.daily_deposit if deposit else limits.daily_withdraw
    counted = _in_base(snapshot, record, at, limits)
    what = f"{record.amount} {record.currency}"
    if counted.amount > limit:
        # Not its worth at the rate: a redelivery, decided again at a rate since moved,
        # publishes its rejection under the same event id, which must say the same.
        at_rate = "" if counted is record else " at the rate of the moment"
        raise CommandRejected(
            Reason.LIMIT_EXCEEDED,
            f"{what} is over the daily limit of {limit} {BASE_CURRENCY}{at_rate}",
        )
    write = LedgerWrite(
        username=record.username,
        fence=None,
        at=at,
        step=Step.FUNDS,
        active_user=True,
        cash=(record,),
        daily=DailyCount(counted, limit),
    )
    return Decision(
        write,
        (funds_event(record, at),),
        lambda refusal: refused_funds(record.username, what, refusal, record.transaction_type),
    )


def blind_funds(command: Deposit | Withdraw, at: datetime, limits: Limits) -> Decision | None:
    """A deposit or withdrawal in the base currency, decided from nothing read; None for
    another currency, whose rate must be read first."""
    if command.payload.currency != BASE_CURRENCY:
        return None
    return move_funds(None, command, at, limits)


def _in_base(
    snapshot: Snapshot | None, record: BalanceTransactionCreate, at: datetime, limits: Limits
) -> BalanceTransactionCreate:
    """The record as the daily limit counts it: its value in the base currency at the
    rate of the moment, rounded up to the cent (never counted below its worth)."""
    if record.currency == BASE_CURRENCY:
        return record
    try:
        rates = snapshot.rates if snapshot else {}
        rate = fresh_rate(rates, record.currency, at, limits.fx_max_age, limits.rate_ahead)
    except RateUnavailable as exc:
        raise CommandRejected(exc.reason, f"{exc.message}: the daily limit cannot apply") from exc
    value = buy_cost(record.amount, rate)  # the exact value, rounded up to the cent
    return record.model_copy(update={"currency": BASE_CURRENCY, "amount": value})


def refused_funds(username: str, what: str, refusal: OrderProcessorError, kind: str) -> Decision:
    """A blind write of funds refused: its id used (read what it holds, then answer), or
    the user's or the money's rules, as the command's rejection."""
    if isinstance(refusal, EntityAlreadyExistsException):
        return Decision(None, then=True)
    if isinstance(refusal, UserNotFoundException | BalanceNotFoundException):
        raise CommandRejected(Reason.UNKNOWN_USER, f"user {username} does not exist") from refusal
    if isinstance(refusal, InactiveUserException):
        raise CommandRejected(Reason.USER_INACTIVE, f"user {username} is disabled") from refusal
    if isinstance(refusal, LimitExceededException):
        raise CommandRejected(
            Reason.LIMIT_EXCEEDED, f"{kind} of {what} would pass today's limit"
        ) from refusal
    if isinstance(refusal, InsufficientBalanceException):
        raise CommandRejected(
            Reason.INSUFFICIENT_BALANCE, f"{what} is more than the available balance"
        ) from refusal
    raise refusal
