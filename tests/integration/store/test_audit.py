"""`order-processor audit` finds each kind of mismatch planted through the raw API, and
passes a clean ledger."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from order_processor.bootstrap import (
    AwsClients,
    get_asset_transaction_dao,
    get_balance_dao,
    get_order_dao,
    open_clients,
)
from order_processor.config import Settings
from order_processor.domain.assets import AssetTransactionCreate, AssetTransactionType
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.domain.base import utc_now
from order_processor.domain.orders import Order, OrderCreate, OrderStatus, OrderType
from order_processor.ops.ledger_audit import AuditReport, LedgerAuditor
from order_processor.store.items import order_item
from tests.builders import an_order
from tests.support import deployed


async def seed(aws: AwsClients, username: str) -> None:
    balances = get_balance_dao(aws)
    await balances.create_balance(username)
    await balances.update_balance(
        BalanceTransactionCreate(
            username=username, transaction_type=TransactionType.DEPOSIT, amount="100"
        )
    )
    await get_asset_transaction_dao(aws).create_asset_transaction(
        AssetTransactionCreate(
            username=username,
            asset_id="BTC",
            transaction_type=AssetTransactionType.BUY,
            quantity="1",
            price="10",
            total_amount="10",
        )
    )


async def audit(aws: AwsClients, username: str) -> AuditReport:
    report = AuditReport()
    auditor = LedgerAuditor(aws.dynamodb, aws.resources.users_table, get_order_dao(aws))
    await auditor.audit_user(username, report)
    return report


def order(username: str, status: OrderStatus, **fields: object) -> Order:
    return an_order(username=username).evolve(status=status, **fields)


async def test_a_clean_ledger_passes(aws: AwsClients, username: str) -> None:
    await seed(aws, username)

    report = await audit(aws, username)

    assert report.passed
    assert report.transactions == 2


async def test_a_balance_changed_without_a_transaction_is_found(
    aws: AwsClients, username: str
) -> None:
    await seed(aws, username)
    await aws.dynamodb.update_item(
        TableName=aws.resources.users_table,
        Key={"PK": {"S": f"USER#{username}"}, "SK": {"S": "BALANCE#USD"}},
        UpdateExpression="SET available = available + :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )

    report = await audit(aws, username)

    assert [str(m) for m in report.mismatches] == [
        f"balance: {username}: USD: stored 101.00 available / 0.00 held, "
        "transactions sum to 100.00 / 0.00 [USD]"
    ]


async def test_an_asset_balance_changed_without_a_transaction_is_found(
    aws: AwsClients, username: str
) -> None:
    await seed(aws, username)
    await aws.dynamodb.update_item(
        TableName=aws.resources.users_table,
        Key={"PK": {"S": f"USER#{username}"}, "SK": {"S": "ASSET#BTC"}},
        UpdateExpression="SET held = :half",
        ExpressionAttributeValues={":half": {"N": "0.5"}},
    )

    report = await audit(aws, username)

    assert [(m.kind, m.ids) for m in report.mismatches] == [("asset_balance", ("BTC",))]
    assert "stored 1 available / 0.5 held, transactions sum to 1 / 0" in report.mismatches[0].detail


async def test_an_order_without_its_records_is_found(aws: AwsClients, username: str) -> None:
    await seed(aws, username)
    completed = order(username, OrderStatus.COMPLETED, price=Decimal(10), total_amount=Decimal(10))
    await aws.dynamodb.put_item(TableName=aws.resources.orders_table, Item=order_item(completed))

    report = await audit(aws, username)

    assert [(m.kind, m.ids[0]) for m in report.mismatches] == [
        ("order_records", completed.order_id)
    ]
    assert "expected ['BUY', 'ORDER_PAYMENT']" in report.mismatches[0].detail


async def test_a_payment_of_the_wrong_amount_is_found(aws: AwsClients, username: str) -> None:
    await seed(aws, username)
    completed = order(username, OrderStatus.COMPLETED, price=Decimal(10), total_amount=Decimal(10))
    await aws.dynamodb.put_item(TableName=aws.resources.orders_table, Item=order_item(completed))
    balances = get_balance_dao(aws)
    await balances.update_balance(
        BalanceTransactionCreate(
            transaction_id=f"{completed.order_id}#payment",
            username=username,
            transaction_type=TransactionType.ORDER_PAYMENT,
            amount="9.99",
            reference_id=completed.order_id,
        )
    )
    await get_asset_transaction_dao(aws).create_asset_transaction(
        AssetTransactionCreate(
            transaction_id=f"{completed.order_id}#buy",
            username=username,
            asset_id="BTC",
            transaction_type=AssetTransactionType.BUY,
            quantity="1",
            price="10",
            total_amount="10",
            order_id=completed.order_id,
        )
    )

    report = await audit(aws, username)

    assert [(m.kind, m.detail) for m in report.mismatches] == [
        ("order_amounts", f"{completed.order_id}#payment is 9.99 USD, expected 10.00 USD")
    ]


async def test_an_order_left_in_flight_is_found_unless_workers_are_running(
    aws: AwsClients, username: str
) -> None:
    await seed(aws, username)
    stuck = order(username, OrderStatus.PROCESSING, step="debited")
    await aws.dynamodb.put_item(TableName=aws.resources.orders_table, Item=order_item(stuck))

    strict = await audit(aws, username)
    lenient = AuditReport()
    auditor = LedgerAuditor(aws.dynamodb, aws.resources.users_table, get_order_dao(aws))
    await auditor.audit_user(username, lenient, allow_in_flight=True)

    assert [(m.kind, m.ids) for m in strict.mismatches] == [("order_in_flight", (stuck.order_id,))]
    assert lenient.passed


async def test_the_whole_table_is_walked_user_by_user(aws_endpoint: str) -> None:
    settings = Settings(endpoint_url=aws_endpoint, prefix=f"a{uuid.uuid4().hex[:12]}")
    with deployed(settings):
        async with open_clients(settings) as fresh:
            for n in range(3):
                await seed(fresh, f"walker_{n:03d}")
            planted = order("walker_001", OrderStatus.PROCESSING, step="debited")
            await fresh.dynamodb.put_item(
                TableName=fresh.resources.orders_table, Item=order_item(planted)
            )
            auditor = LedgerAuditor(
                fresh.dynamodb, fresh.resources.users_table, get_order_dao(fresh)
            )
            report = await auditor.run()

    assert (report.users, report.orders, report.transactions) == (3, 1, 6)
    assert [(m.kind, m.username) for m in report.mismatches] == [("order_in_flight", "walker_001")]
    assert (
        report.summary()
        == "audit FAILED: 1 mismatch(es): 3 users, 1 orders, 6 transactions checked"
    )


async def test_an_amount_that_is_not_quantity_at_price_is_found(
    aws: AwsClients, username: str
) -> None:
    await seed(aws, username)
    # Records agree with the order, but 1 at 10 is 10.00, not 9.00.
    wrong = order(username, OrderStatus.FAILED, step="refunded", price=Decimal(10))
    wrong = wrong.evolve(total_amount=Decimal("9.00"))
    await aws.dynamodb.put_item(TableName=aws.resources.orders_table, Item=order_item(wrong))
    for kind in (TransactionType.ORDER_PAYMENT, TransactionType.ORDER_REFUND):
        await get_balance_dao(aws).update_balance(
            BalanceTransactionCreate(
                transaction_id=f"{wrong.order_id}#{kind.value.lower()}",
                username=username,
                transaction_type=kind,
                amount="9.00",
                reference_id=wrong.order_id,
            )
        )

    report = await audit(aws, username)

    assert [(m.kind, m.detail) for m in report.mismatches] == [
        ("order_amounts", "total_amount is 9.00; 1 at 10.00000000 is 10.00")
    ]


async def test_a_queued_order_long_past_its_expiry_is_found(aws: AwsClients, username: str) -> None:
    await seed(aws, username)
    request = OrderCreate(
        order_type=OrderType.LIMIT_SELL, asset_id="BTC", quantity=Decimal("1"), limit_price=20
    )
    missed = Order.place(username, request).evolve(
        status=OrderStatus.QUEUED, expires_at=utc_now() - timedelta(hours=1)
    )
    await aws.dynamodb.put_item(TableName=aws.resources.orders_table, Item=order_item(missed))
    await get_asset_transaction_dao(aws).create_asset_transaction(
        AssetTransactionCreate(
            transaction_id=f"{missed.order_id}#hold",
            username=username,
            asset_id="BTC",
            transaction_type=AssetTransactionType.HOLD,
            quantity="1",
            price="20",
            total_amount="0",
            order_id=missed.order_id,
        )
    )

    report = await audit(aws, username)

    assert [(m.kind, m.ids[0]) for m in report.mismatches] == [("order_overdue", missed.order_id)]
