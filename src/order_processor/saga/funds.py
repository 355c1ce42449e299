"""Deposits and withdrawals: one write each, idempotent by command id, decided from
nothing read.

The balance change, its DEPOSIT/WITHDRAW record (id = command id, conditioned on its
absence), the day's running total (checked against the daily limit) and a check that the
user exists and is active commit together; every condition is in the write, so it needs
no read first and only moves the user's fence. A record already there (a redelivery, or
an id reused) is then read: the same request is answered with its event again, another is
a conflicting duplicate, applied never.
"""

from __future__ import annotations

from datetime import datetime

from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.commands import Deposit, Withdraw
from order_processor.domain.events import funds_event
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
    """`snapshot`: None at first (the write is blind); the record's read, after the write
    found the command id used."""
    deposit = isinstance(command, Deposit)
    record = BalanceTransactionCreate(
        transaction_id=command.command_id,
        username=command.username,
        transaction_type=TransactionType.DEPOSIT if deposit else TransactionType.WITHDRAW,
        amount=command.payload.amount,
        reference_id=command.command_id,
    )
    stored = snapshot.funds if snapshot is not None else None
    if stored is not None:
        if (stored.transaction_type, stored.amount) != (record.transaction_type, record.amount):
            raise CommandRejected(
                Reason.CONFLICTING_DUPLICATE,
                f"command {record.transaction_id} was already applied as a "
                f"{stored.transaction_type} of {stored.amount} USD; it was not applied again",
            )
        return Decision(None, (funds_event(record, stored.created_at),))  # a redelivery
    limit = limits.daily_deposit if deposit else limits.daily_withdraw
    if record.amount > limit:
        raise CommandRejected(
            Reason.LIMIT_EXCEEDED, f"{record.amount} USD is over the daily limit of {limit} USD"
        )
    write = LedgerWrite(
        username=record.username,
        fence=None,
        at=at,
        step=Step.FUNDS,
        active_user=True,
        usd=(record,),
        daily=DailyCount(record, limit),
    )
    return Decision(write, (funds_event(record, at),), lambda refusal: _refused(record, refusal))


def _refused(record: BalanceTransactionCreate, refusal: OrderProcessorError) -> Decision:
    if isinstance(refusal, EntityAlreadyExistsException):
        return Decision(None, then=True)  # the id is used: read what it holds, then answer
    if isinstance(refusal, UserNotFoundException | BalanceNotFoundException):
        raise CommandRejected(
            Reason.UNKNOWN_USER, f"user {record.username} does not exist"
        ) from refusal
    if isinstance(refusal, InactiveUserException):
        raise CommandRejected(
            Reason.USER_INACTIVE, f"user {record.username} is disabled"
        ) from refusal
    if isinstance(refusal, LimitExceededException):
        raise CommandRejected(
            Reason.LIMIT_EXCEEDED,
            f"{record.transaction_type} of {record.amount} USD would pass today's limit",
        ) from refusal
    if isinstance(refusal, InsufficientBalanceException):
        raise CommandRejected(
            Reason.INSUFFICIENT_BALANCE, f"{record.amount} USD is more than the available balance"
        ) from refusal
    raise refusal
