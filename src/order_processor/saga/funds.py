"""Deposits and withdrawals: one write each, idempotent by command id.

The balance change, its DEPOSIT/WITHDRAW record (id = command id) and the day's running
total (checked against the daily limit) commit together, fenced. A command id already
used for the same request is answered with its event again; for another request it is a
conflicting duplicate, applied never.
"""

from __future__ import annotations

from datetime import datetime

from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.commands import Deposit, Withdraw
from order_processor.domain.events import funds_event
from order_processor.domain.ports import DailyCount, LedgerWrite, Snapshot
from order_processor.exceptions import (
    BalanceNotFoundException,
    CommandRejected,
    EntityAlreadyExistsException,
    InsufficientBalanceException,
    LimitExceededException,
    OrderProcessorError,
    Reason,
)
from order_processor.saga.decision import Decision, Limits


def move_funds(
    snapshot: Snapshot, command: Deposit | Withdraw, at: datetime, limits: Limits
) -> Decision:
    deposit = isinstance(command, Deposit)
    record = BalanceTransactionCreate(
        transaction_id=command.command_id,
        username=command.username,
        transaction_type=TransactionType.DEPOSIT if deposit else TransactionType.WITHDRAW,
        amount=command.payload.amount,
        reference_id=command.command_id,
    )
    stored = snapshot.funds
    if stored is not None:
        if (stored.transaction_type, stored.amount) != (record.transaction_type, record.amount):
            raise CommandRejected(
                Reason.CONFLICTING_DUPLICATE,
                f"command {record.transaction_id} was already applied as a "
                f"{stored.transaction_type} of {stored.amount} USD; it was not applied again",
            )
        return Decision(None, (funds_event(record, stored.created_at),))  # a redelivery
    if snapshot.user is None:
        raise CommandRejected(Reason.UNKNOWN_USER, f"user {record.username} does not exist")
    if not snapshot.user.is_active:
        raise CommandRejected(Reason.USER_INACTIVE, f"user {record.username} is disabled")
    limit = limits.daily_deposit if deposit else limits.daily_withdraw
    if record.amount > limit:
        raise CommandRejected(
            Reason.LIMIT_EXCEEDED, f"{record.amount} USD is over the daily limit of {limit} USD"
        )
    write = LedgerWrite(
        username=record.username,
        fence=snapshot.fence,
        at=at,
        step="funds",
        usd=(record,),
        daily=DailyCount(record, limit),
    )
    return Decision(write, (funds_event(record, at),), lambda refusal: _refused(record, refusal))


def _refused(record: BalanceTransactionCreate, refusal: OrderProcessorError) -> Decision:
    if isinstance(refusal, LimitExceededException):
        raise CommandRejected(
            Reason.LIMIT_EXCEEDED,
            f"{record.transaction_type} of {record.amount} USD would pass today's limit",
        ) from refusal
    if isinstance(refusal, BalanceNotFoundException):
        raise CommandRejected(
            Reason.UNKNOWN_USER, f"user {record.username} has no balance"
        ) from refusal
    if isinstance(refusal, InsufficientBalanceException):
        raise CommandRejected(
            Reason.INSUFFICIENT_BALANCE, f"{record.amount} USD is more than the available balance"
        ) from refusal
    if isinstance(refusal, EntityAlreadyExistsException):
        raise CommandRejected(
            Reason.DUPLICATE, f"transaction {record.transaction_id} already exists"
        ) from refusal
    raise refusal
