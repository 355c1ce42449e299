"""DynamoLedger against the endpoint: one BatchGetItem reads what a command needs, one
TransactWriteItems writes a step whole or not at all, and each refusal comes back as the
domain's exception naming what refused it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_processor.bootstrap import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_dao,
    get_balance_dao,
    get_order_dao,
    get_user_dao,
)
from order_processor.domain.assets import AssetCreate, AssetTransactionType
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.base import new_id
from order_processor.domain.commands import Convert, ConvertPayload, PlaceOrder, PlaceOrderPayload
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.domain.ports import DailyCount, LedgerWrite
from order_processor.domain.steps import Step
from order_processor.domain.users import UserCreate, UserUpdate
from order_processor.exceptions import (
    BalanceNotFoundException,
    EntityAlreadyExistsException,
    FenceConflictException,
    InsufficientAssetBalanceException,
    InsufficientBalanceException,
    LimitExceededException,
    OrderChangedException,
    OrderNotFoundException,
)
from order_processor.saga.convert import convert
from order_processor.saga.decision import Limits, moved
from order_processor.saga.orders import place_order
from order_processor.saga.records import asset_record, usd_record
from order_processor.saga.routes import read_conversion, read_placement
from order_processor.store.ledger import DynamoLedger
from order_processor.store.rates import ExchangeRateStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def ledger_of(aws: AwsClients) -> DynamoLedger:
    r = aws.resources
    return DynamoLedger(aws.dynamodb, r.users_table, r.orders_table, r.inventory_table)


async def funded(aws: AwsClients, username: str, usd: str = "100") -> None:
    balances = get_balance_dao(aws)
    await balances.create_balance(username)
    deposit = BalanceTransactionCreate(
        username=username, transaction_type=TransactionType.DEPOSIT, amount=usd
    )
    await balances.update_balance(deposit)


def bought(username: str, quantity: str = "1", total: str = "10.00") -> Order:
    request = OrderCreate(order_type=OrderType.MARKET_BUY, asset_id="BTC", quantity=quantity)
    order = Order.place(username, request).evolve(
        sequence=3,
        step="completed",
        status=OrderStatus.COMPLETED,
        price=Decimal("10"),
        total_amount=Decimal(total),
        created_at=NOW,
        updated_at=NOW,
    )
    return order


def deposit_write(username: str, amount: str, fence: int) -> LedgerWrite:
    record = BalanceTransactionCreate(
        username=username, transaction_type=TransactionType.DEPOSIT, amount=amount
    )
    return LedgerWrite(
        username=username,
        fence=fence,
        at=NOW,
        step=Step.FUNDS,
        cash=(record,),
        daily=DailyCount(record, Decimal("50")),
    )


def buy_write(username: str, fence: int, order: Order) -> LedgerWrite:
    assert order.total_amount is not None
    return LedgerWrite(
        username=username,
        fence=fence,
        at=NOW,
        step=Step.COMPLETED,
        order=order,
        cash=(usd_record(order, TransactionType.ORDER_PAYMENT, order.total_amount),),
        assets=(asset_record(order, AssetTransactionType.BUY),),
    )


async def test_one_write_moves_money_records_and_the_order_and_the_fence(
    aws: AwsClients, username: str
) -> None:
    await funded(aws, username)
    ledger = ledger_of(aws)
    order = bought(username)

    await ledger.write(buy_write(username, 0, order))
    snapshot = await ledger.read(username, order_id=order.order_id)

    assert (snapshot.fence, snapshot.order) == (1, order)
    assert (await get_balance_dao(aws).get_balance(username)).available == Decimal("90.00")
    btc = await get_asset_balance_dao(aws).get_asset_balance(username, "BTC")
    assert btc.available == Decimal("1")
    lock = await aws.dynamodb.get_item(
        TableName=aws.resources.users_table,
        Key={"PK": {"S": f"USER#{username}"}, "SK": {"S": "LOCK"}},
    )
    assert "owner" not in lock["Item"]  # taken and released within the write


async def test_the_read_brings_the_user_the_asset_and_the_funds_record_together(
    aws: AwsClients, username: str
) -> None:
    await funded(aws, username)
    asset_id = "R" + username[-5:].upper()
    await get_asset_dao(aws).create_asset(AssetCreate(asset_id=asset_id, name="R", price="3"))
    deposit_id = (await get_balance_dao(aws).get_user_transactions(username)).items[0]

    snapshot = await ledger_of(aws).read(
        username, asset_id=asset_id, funds_id=deposit_id.transaction_id
    )

    assert snapshot.user is None  # users are created by UserDAO; this one has only a balance
    assert snapshot.asset is not None
    assert snapshot.asset.price == Decimal("3.00000000")
    assert snapshot.funds == deposit_id
    assert (snapshot.fence, snapshot.order) == (0, None)


async def test_a_write_from_a_stale_read_is_refused_and_changes_nothing(
    aws: AwsClients, username: str
) -> None:
    await funded(aws, username)
    ledger = ledger_of(aws)
    await ledger.write(buy_write(username, 0, bought(username)))
    late = bought(username)

    with pytest.raises(FenceConflictException) as refused:
        await ledger.write(buy_write(username, 0, late))  # read before the first write

    assert refused.value.retryable
    assert (await get_balance_dao(aws).get_balance(username)).available == Decimal("90.00")
    with pytest.raises(OrderNotFoundException):
        await get_order_dao(aws).get_order(late.order_id)


async def test_a_user_held_by_a_lease_refuses_every_write(aws: AwsClients, username: str) -> None:
    await funded(aws, username)
    until = int((NOW + timedelta(minutes=5)).timestamp() * 1000)  # the writer's clock: NOW
    await aws.dynamodb.put_item(
        TableName=aws.resources.users_table,
        Item={
            "PK": {"S": f"USER#{username}"},
            "SK": {"S": "LOCK"},
            "owner": {"S": "operator-freeze"},
            "fencing_token": {"N": "7"},
            "lease_expires": {"N": str(until)},
        },
    )

    with pytest.raises(FenceConflictException):
        await ledger_of(aws).write(buy_write(username, 7, bought(username)))


@pytest.mark.parametrize(
    ("setup", "refusal"),
    [
        ("too little USD", InsufficientBalanceException),
        ("no balance", BalanceNotFoundException),
        ("too little asset", InsufficientAssetBalanceException),
        ("order exists", OrderChangedException),
        ("order moved on", OrderChangedException),
        ("record exists", EntityAlreadyExistsException),
        ("daily limit", LimitExceededException),
    ],
)
async def test_each_refusal_names_what_refused_the_write(
    aws: AwsClients, username: str, setup: str, refusal: type[Exception]
) -> None:
    ledger = ledger_of(aws)
    if setup != "no balance":
        await funded(aws, username, "5" if setup == "too little USD" else "100")
    order = bought(username)
    write = buy_write(username, 0, order)
    if setup == "too little asset":
        sell = moved(order, NOW, Step.COMPLETED, status=OrderStatus.COMPLETED)
        write = LedgerWrite(
            username=username,
            fence=0,
            at=NOW,
            step=Step.COMPLETED,
            order=sell,
            assets=(asset_record(sell, AssetTransactionType.SELL),),
        )
    elif setup in {"order exists", "record exists"}:
        await ledger.write(write)
        again = bought(username) if setup == "record exists" else order
        if setup == "record exists":
            again = again.model_copy(update={"order_id": order.order_id + "x"})
        clash = buy_write(username, 1, again)
        if setup == "record exists":  # same record ids as the first write
            clash = LedgerWrite(**{**vars(clash), "cash": write.cash, "assets": ()})
        write = clash
    elif setup == "order moved on":
        write = LedgerWrite(**{**vars(write), "replaces": order})  # expects it stored
    elif setup == "daily limit":  # 30 counted today already; 30 more would pass 50
        write = deposit_write(username, "30", fence=0)
        await ledger.write(write)
        write = deposit_write(username, "30", fence=1)

    with pytest.raises(refusal):
        await ledger.write(write)


async def test_a_withdrawal_written_before_is_found_applied_though_the_balance_moved_on(
    aws: AwsClients, username: str
) -> None:
    """A redelivered withdrawal whose first copy was written (the worker died before the
    delete) must come back as applied, not as refused for the balance spent since."""
    ledger = ledger_of(aws)
    await funded(aws, username, "100")
    first = BalanceTransactionCreate(
        username=username, transaction_type=TransactionType.WITHDRAW, amount="60"
    )
    spend = BalanceTransactionCreate(
        username=username, transaction_type=TransactionType.WITHDRAW, amount="30"
    )
    for record in (first, spend):
        await ledger.write(
            LedgerWrite(username=username, fence=None, at=NOW, step=Step.FUNDS, cash=(record,))
        )

    again = LedgerWrite(username=username, fence=None, at=NOW, step=Step.FUNDS, cash=(first,))
    with pytest.raises(EntityAlreadyExistsException):
        await ledger.write(again)
    assert (await get_balance_dao(aws).get_balance(username)).available == Decimal("10")


async def test_disabling_a_user_refuses_a_write_decided_before_it(
    aws: AwsClients, username: str
) -> None:
    """UserDAO.update_user moves the user's fence with is_active: a fill decided from a
    read of the active user cannot commit once the user is disabled."""
    users = get_user_dao(aws)
    await users.create_user(
        UserCreate(
            username=username, email=f"{username}@example.com", first_name="A", last_name="B"
        ),
        password_hash="x",
    )
    await get_balance_dao(aws).update_balance(
        BalanceTransactionCreate(
            username=username, transaction_type=TransactionType.DEPOSIT, amount="100"
        )
    )
    ledger = ledger_of(aws)
    read = await ledger.read(username)
    assert read.user is not None
    assert read.user.is_active

    await users.update_user(username, UserUpdate(is_active=False))

    with pytest.raises(FenceConflictException):
        await ledger.write(buy_write(username, read.fence, bought(username)))
    assert (await get_balance_dao(aws).get_balance(username)).available == Decimal("100.00")


async def test_a_created_user_has_a_zero_balance_opened_with_it(
    aws: AwsClients, username: str
) -> None:
    await get_user_dao(aws).create_user(
        UserCreate(
            username=username, email=f"{username}@example.com", first_name="A", last_name="B"
        ),
        password_hash="x",
    )

    balance = await get_balance_dao(aws).get_balance(username)
    assert (balance.available, balance.held) == (Decimal("0.00"), Decimal("0.00"))


async def test_a_hold_taken_and_released_in_one_write_needs_the_whole_hold_available(
    aws: AwsClients, username: str
) -> None:
    """A limit buy of 10 at 100 placed and executed at 50 at once: the history says 1,000
    USD were held, so 600 available must refuse it, though it nets to a payment of 500."""
    await funded(aws, username, "600")
    request = OrderCreate(
        order_type=OrderType.LIMIT_BUY, asset_id="BTC", quantity="10", limit_price="100"
    )
    placed = Order.place(username, request).evolve(
        sequence=1, step="held", status=OrderStatus.QUEUED, created_at=NOW, updated_at=NOW
    )
    done = moved(placed, NOW, Step.COMPLETED, status=OrderStatus.COMPLETED).evolve(
        price=Decimal("50"), total_amount=Decimal("500.00")
    )
    write = LedgerWrite(
        username=username,
        fence=0,
        at=NOW,
        step=Step.COMPLETED,
        order=done,
        cash=(
            usd_record(placed, TransactionType.ORDER_HOLD, Decimal("1000.00")),
            usd_record(done, TransactionType.ORDER_RELEASE, Decimal("1000.00")),
            usd_record(done, TransactionType.ORDER_PAYMENT, Decimal("500.00")),
        ),
    )

    with pytest.raises(InsufficientBalanceException):
        await ledger_of(aws).write(write)
    assert (await get_balance_dao(aws).get_balance(username)).available == Decimal("600.00")


async def test_a_conversion_read_back_is_announced_as_it_was_first(
    aws: AwsClients, username: str
) -> None:
    """A redelivered Convert finds its records and answers with its event again: the
    same text, though what DynamoDB keeps of the spread (0.50) is the number 0.5."""
    await get_user_dao(aws).create_user(
        UserCreate(
            username=username, email=f"{username}@example.com", first_name="C", last_name="V"
        ),
        password_hash="x",
    )
    await get_balance_dao(aws).update_balance(
        BalanceTransactionCreate(
            username=username, transaction_type=TransactionType.DEPOSIT, amount="100"
        )
    )
    rates = ExchangeRateStore(aws.dynamodb, aws.resources.inventory_table, clock=lambda: NOW)
    await rates.change_rate("EUR", "1.0842", as_of=NOW, command_id="rate-1")
    payload = ConvertPayload(sell="USD", buy="EUR", amount=Decimal("50"))
    command = Convert(command_id=new_id(), username=username, auth="t", payload=payload)
    ledger = ledger_of(aws)
    limits = Limits(Decimal(10000), Decimal(10000), Decimal(5000))

    first = convert(await read_conversion(ledger, command), command, NOW, limits)
    assert first.write is not None
    await ledger.write(first.write)
    again = convert(await read_conversion(ledger, command), command, NOW, limits)

    assert again.write is None  # applied once
    assert [e.model_dump() for e in again.events] == [e.model_dump() for e in first.events]
    assert first.events[0].data["spread_percent"] == "0.50"


async def test_a_buy_paid_in_another_currency_read_back_is_announced_as_it_was_first(
    aws: AwsClients, username: str
) -> None:
    """A redelivered PlaceOrder of a buy paid in dollars finds the order and answers with
    its last event again: the same text, though what DynamoDB keeps of its pay spread
    (0.50) is the number 0.5 (found by the chaos run: two copies of order-00171:3)."""
    await get_user_dao(aws).create_user(
        UserCreate(
            username=username, email=f"{username}@example.com", first_name="P", last_name="I"
        ),
        password_hash="x",
    )
    await get_balance_dao(aws).update_balance(
        BalanceTransactionCreate(
            username=username, transaction_type=TransactionType.DEPOSIT, amount="100"
        )
    )
    await get_asset_dao(aws).create_asset(
        AssetCreate(asset_id="ETHEUR", name="Ether in euros", price="2000", quote_currency="EUR")
    )
    rates = ExchangeRateStore(aws.dynamodb, aws.resources.inventory_table, clock=lambda: NOW)
    await rates.change_rate("EUR", "1.0842", as_of=NOW, command_id="rate-1")
    request = OrderCreate(
        order_type=OrderType.MARKET_BUY, asset_id="ETHEUR", quantity="0.01", pay_currency="USD"
    )
    command = PlaceOrder(
        command_id=new_id(),
        username=username,
        auth="t",
        payload=PlaceOrderPayload(order_id=new_id(), **request.model_dump(exclude_none=True)),
    )
    ledger = ledger_of(aws)
    limits = Limits(Decimal(10000), Decimal(10000), Decimal(5000))

    first = place_order(await read_placement(ledger, command), command, NOW, limits)
    assert first.write is not None
    await ledger.write(first.write)
    again = place_order(await read_placement(ledger, command), command, NOW, limits)

    assert again.write is None  # applied once
    assert again.events[-1].model_dump() == first.events[-1].model_dump()
    assert first.events[-1].data["pay_spread_percent"] == "0.50"
