from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from order_processor.bootstrap import AwsClients, get_balance_dao
from order_processor.domain.balances import (
    BalanceTransactionCreate,
    TransactionStatus,
    TransactionType,
)
from order_processor.exceptions import (
    BalanceNotFoundException,
    EntityAlreadyExistsException,
    InsufficientBalanceException,
    InvalidTransitionException,
    TransactionNotFoundException,
)
from order_processor.store.balances import BalanceDAO
from tests.ledger import assert_usd_ledger_balances


def tx(
    username: str, kind: TransactionType, amount: str, **fields: object
) -> BalanceTransactionCreate:
    return BalanceTransactionCreate.model_validate(
        {"username": username, "transaction_type": kind, "amount": amount, **fields}
    )


@pytest.fixture
async def balances(aws: AwsClients, username: str) -> BalanceDAO:
    dao = get_balance_dao(aws)
    await dao.create_balance(username)
    return dao


async def test_a_new_balance_is_zero_and_created_once(balances: BalanceDAO, username: str) -> None:
    balance = await balances.get_balance(username)

    assert (balance.available, balance.held, balance.total) == (Decimal("0.00"),) * 3
    with pytest.raises(EntityAlreadyExistsException):
        await balances.create_balance(username)


async def test_unknown_balance_is_not_found(aws: AwsClients, username: str) -> None:
    dao = get_balance_dao(aws)

    with pytest.raises(BalanceNotFoundException):
        await dao.get_balance(username)
    with pytest.raises(BalanceNotFoundException):
        await dao.update_balance(tx(username, TransactionType.DEPOSIT, "5"))


async def test_balances_lists_every_currency_to_its_minor_unit(
    balances: BalanceDAO, username: str
) -> None:
    await balances.update_balance(tx(username, TransactionType.DEPOSIT, "12.5"))
    await balances.update_balance(tx(username, TransactionType.DEPOSIT, "3000", currency="JPY"))
    await balances.update_balance(tx(username, TransactionType.DEPOSIT, "7.25", currency="EUR"))

    held = await balances.balances(username.upper())

    assert [(b.currency, str(b.available), str(b.held), str(b.total)) for b in held] == [
        ("EUR", "7.25", "0.00", "7.25"),
        ("JPY", "3000", "0", "3000"),
        ("USD", "12.50", "0.00", "12.50"),
    ]


async def test_balances_of_an_unknown_user_are_not_found(aws: AwsClients, username: str) -> None:
    with pytest.raises(BalanceNotFoundException):
        await get_balance_dao(aws).balances(username)


async def test_each_type_moves_available_and_held_to_the_cent(
    balances: BalanceDAO, username: str
) -> None:
    steps = [
        (TransactionType.DEPOSIT, "1000", "1000.00", "0.00"),
        (TransactionType.ORDER_HOLD, "250.25", "749.75", "250.25"),
        (TransactionType.ORDER_RELEASE, "50.05", "799.80", "200.20"),
        (TransactionType.ORDER_PAYMENT, "99.99", "699.81", "200.20"),
        (TransactionType.ORDER_SALE, "0.01", "699.82", "200.20"),
        (TransactionType.ORDER_REFUND, "0.18", "700.00", "200.20"),
        (TransactionType.WITHDRAW, "700", "0.00", "200.20"),
        (TransactionType.SYSTEM_ADJUSTMENT, "-0.20", "-0.20", "200.20"),
    ]
    for kind, amount, available, held in steps[:-1]:
        balance = await balances.update_balance(tx(username, kind, amount))
        assert (str(balance.available), str(balance.held)) == (available, held), kind

    with pytest.raises(InsufficientBalanceException):
        await balances.update_balance(tx(username, *steps[-1][:2]))
    await assert_usd_ledger_balances(balances, username)


async def test_a_debit_beyond_available_is_refused_and_records_nothing(
    balances: BalanceDAO, username: str
) -> None:
    await balances.update_balance(tx(username, TransactionType.DEPOSIT, "100"))
    await balances.update_balance(tx(username, TransactionType.ORDER_HOLD, "60"))

    # 40 available, 60 held: held funds cannot pay.
    with pytest.raises(InsufficientBalanceException, match="ORDER_PAYMENT of 40.01"):
        await balances.update_balance(tx(username, TransactionType.ORDER_PAYMENT, "40.01"))
    with pytest.raises(InsufficientBalanceException):
        await balances.update_balance(tx(username, TransactionType.ORDER_RELEASE, "60.01"))

    page = await balances.get_user_transactions(username)
    assert [r.transaction_type for r in page.items] == [
        TransactionType.ORDER_HOLD,
        TransactionType.DEPOSIT,
    ]
    await assert_usd_ledger_balances(balances, username)


async def test_concurrent_debits_never_take_a_balance_below_zero(
    balances: BalanceDAO, username: str
) -> None:
    await balances.update_balance(tx(username, TransactionType.DEPOSIT, "50"))

    results = await asyncio.gather(
        *(balances.update_balance(tx(username, TransactionType.WITHDRAW, "1")) for _ in range(80)),
        return_exceptions=True,
    )

    refused = [r for r in results if isinstance(r, InsufficientBalanceException)]
    assert len(refused) == 30
    assert (await balances.get_balance(username)).available == Decimal("0.00")
    await assert_usd_ledger_balances(balances, username)


async def test_one_transaction_id_is_applied_once(balances: BalanceDAO, username: str) -> None:
    deposit = tx(username, TransactionType.DEPOSIT, "10", transaction_id="deposit-1")
    await balances.update_balance(deposit)

    with pytest.raises(EntityAlreadyExistsException, match="deposit-1"):
        await balances.update_balance(deposit)

    assert (await balances.get_balance(username)).available == Decimal("10.00")


async def test_transactions_page_newest_first_across_pages(
    balances: BalanceDAO, username: str
) -> None:
    for cents in range(1, 8):
        await balances.update_balance(tx(username, TransactionType.DEPOSIT, f"0.0{cents}"))

    amounts, cursor, pages = [], None, 0
    while True:
        page = await balances.get_user_transactions(username, limit=3, cursor=cursor)
        amounts += [str(r.amount) for r in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert amounts == [f"0.0{c}" for c in range(7, 0, -1)]
    assert pages == 3


async def test_a_pending_transaction_moves_money_only_when_completed(
    balances: BalanceDAO, username: str
) -> None:
    pending = tx(username, TransactionType.DEPOSIT, "25", status=TransactionStatus.PENDING)
    record = await balances.create_transaction(pending)
    assert (await balances.get_balance(username)).available == Decimal("0.00")

    completed = await balances.update_transaction_status(
        username, record.transaction_id, TransactionStatus.COMPLETED
    )

    assert completed.status is TransactionStatus.COMPLETED
    assert (await balances.get_balance(username)).available == Decimal("25.00")
    stored = await balances.get_transaction(username, record.transaction_id)
    assert stored.status is TransactionStatus.COMPLETED
    with pytest.raises(InvalidTransitionException):
        await balances.update_transaction_status(
            username, record.transaction_id, TransactionStatus.CANCELLED
        )
    await assert_usd_ledger_balances(balances, username)


async def test_a_cancelled_pending_transaction_moves_nothing(
    balances: BalanceDAO, username: str
) -> None:
    pending = tx(username, TransactionType.DEPOSIT, "25", status=TransactionStatus.PENDING)
    record = await balances.create_transaction(pending)

    await balances.update_transaction_status(
        username, record.transaction_id, TransactionStatus.CANCELLED
    )

    assert (await balances.get_balance(username)).available == Decimal("0.00")
    stored = await balances.get_transaction(username, record.transaction_id)
    assert stored.status is TransactionStatus.CANCELLED


async def test_a_completed_transaction_cannot_be_written_without_its_effect(
    balances: BalanceDAO, username: str
) -> None:
    with pytest.raises(ValueError, match="use update_balance"):
        await balances.create_transaction(tx(username, TransactionType.DEPOSIT, "5"))
    with pytest.raises(TransactionNotFoundException):
        await balances.get_transaction(username, "missing")
