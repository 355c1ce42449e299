"""Deposits and withdrawals: one transaction each, idempotent by command id.

The balance change, its DEPOSIT/WITHDRAW record (id = command id) and the day's running
total (checked against the daily limit) commit together, fenced by the user's lock.
"""

from __future__ import annotations

from datetime import datetime

from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.commands import CommandRejected, Deposit, Withdraw
from order_processor.domain.events import Event, EventType
from order_processor.exceptions import (
    BalanceNotFoundException,
    TransactionNotFoundException,
    UserNotFoundException,
)
from order_processor.saga.context import SagaContext, StepRefused, commit
from order_processor.store.lock import Lease


async def apply_funds(context: SagaContext, lease: Lease, command: Deposit | Withdraw) -> Event:
    deposit = isinstance(command, Deposit)
    record = BalanceTransactionCreate(
        transaction_id=command.command_id,
        username=command.username,
        transaction_type=TransactionType.DEPOSIT if deposit else TransactionType.WITHDRAW,
        amount=command.payload.amount,
        reference_id=command.command_id,
    )
    applied_at = await _already_applied(context, record)
    if applied_at is not None:
        event = funds_event(record, applied_at)  # a redelivery: the same event again
        await context.publisher.publish(event)
        return event
    await _check_user(context, record.username)
    limit = context.limits.daily_deposit if deposit else context.limits.daily_withdraw
    if record.amount > limit:
        raise CommandRejected(
            "LIMIT_EXCEEDED", f"{record.amount} USD is over the daily limit of {limit} USD"
        )
    now = context.clock()
    event = funds_event(record, now)
    balances = context.balances
    parts = [
        ("balance", {"Update": balances.balance_change(record, now)}),
        ("transaction", {"Put": balances.transaction_put(record, now)}),
        ("limit", {"Update": balances.daily_total_change(record, limit, now)}),
    ]
    context.faults.before("funds")
    try:
        await commit(context, lease, parts)
    except StepRefused as exc:
        raise await _rejection(context, record, exc.part, limit) from exc
    context.faults.after_commit("funds")
    await context.publisher.publish(event)
    return event


async def _already_applied(
    context: SagaContext, record: BalanceTransactionCreate
) -> datetime | None:
    """When a redelivered command was applied (None: not yet); a different command reusing
    the id is rejected."""
    try:
        stored = await context.balances.get_transaction(record.username, record.transaction_id)
    except TransactionNotFoundException:
        return None
    if (stored.transaction_type, stored.amount) != (record.transaction_type, record.amount):
        raise CommandRejected(
            "CONFLICTING_DUPLICATE",
            f"command {record.transaction_id} was already applied as a {stored.transaction_type} "
            f"of {stored.amount} USD; it was not applied again",
        )
    return stored.created_at


async def _check_user(context: SagaContext, username: str) -> None:
    try:
        user = await context.users.get_user_by_username(username)
    except UserNotFoundException as exc:
        raise CommandRejected("UNKNOWN_USER", f"user {username} does not exist") from exc
    if not user.is_active:
        raise CommandRejected("USER_INACTIVE", f"user {username} is disabled")


async def _rejection(
    context: SagaContext, record: BalanceTransactionCreate, part: str, limit: object
) -> CommandRejected:
    if part == "limit":
        return CommandRejected(
            "LIMIT_EXCEEDED",
            f"{record.transaction_type} of {record.amount} USD would pass "
            f"today's limit of {limit} USD",
        )
    if part == "transaction":
        return CommandRejected("DUPLICATE", f"transaction {record.transaction_id} already exists")
    try:
        await context.balances.get_balance(record.username)
    except BalanceNotFoundException:
        return CommandRejected("UNKNOWN_USER", f"user {record.username} has no balance")
    return CommandRejected(
        "INSUFFICIENT_BALANCE", f"{record.amount} USD is more than the available balance"
    )


def funds_event(record: BalanceTransactionCreate, applied_at: datetime) -> Event:
    """The same for every publish of one command: its time is the stored record's."""
    deposited = record.transaction_type is TransactionType.DEPOSIT
    return Event(
        event_id=f"funds:{record.username}:{record.transaction_id}",  # ids are per user
        event_type=EventType.BALANCE_DEPOSITED if deposited else EventType.BALANCE_WITHDRAWN,
        occurred_at=applied_at,
        username=record.username,
        sequence=1,
        data={
            "transaction_id": record.transaction_id,
            "transaction_type": record.transaction_type.value,
            "amount": format(record.amount, "f"),
        },
    )
