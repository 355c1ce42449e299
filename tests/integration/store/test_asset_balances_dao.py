from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from order_processor.bootstrap import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_transaction_dao,
)
from order_processor.domain.assets import (
    AssetTransactionCreate,
    AssetTransactionStatus,
    AssetTransactionType,
)
from order_processor.exceptions import (
    AssetBalanceNotFoundException,
    EntityAlreadyExistsException,
    InsufficientAssetBalanceException,
    TransactionNotFoundException,
)


async def test_two_hundred_concurrent_adds_give_the_exact_total(
    aws: AwsClients, username: str
) -> None:
    holdings = get_asset_balance_dao(aws)

    await asyncio.gather(
        *(holdings.upsert_asset_balance(username, "btc", "0.00000001") for _ in range(200))
    )

    balance = await holdings.get_asset_balance(username, "BTC")
    assert balance.available == Decimal("0.00000200")
    assert balance.held == Decimal("0")


async def test_concurrent_removals_never_go_below_zero(aws: AwsClients, username: str) -> None:
    holdings = get_asset_balance_dao(aws)
    await holdings.upsert_asset_balance(username, "ETH", "0.5")

    results = await asyncio.gather(
        *(holdings.upsert_asset_balance(username, "ETH", "-0.01") for _ in range(200)),
        return_exceptions=True,
    )

    refused = [r for r in results if isinstance(r, InsufficientAssetBalanceException)]
    assert len(refused) == 150
    assert (await holdings.get_asset_balance(username, "ETH")).available == Decimal("0")


async def test_removing_from_a_missing_holding_is_not_found(aws: AwsClients, username: str) -> None:
    holdings = get_asset_balance_dao(aws)

    with pytest.raises(AssetBalanceNotFoundException):
        await holdings.upsert_asset_balance(username, "SOL", "-1")
    with pytest.raises(AssetBalanceNotFoundException):
        await holdings.get_asset_balance(username, "SOL")
    with pytest.raises(ValueError, match="not floats"):
        await holdings.upsert_asset_balance(username, "SOL", -0.5)  # type: ignore[arg-type]


async def test_all_asset_balances_of_a_user(aws: AwsClients, username: str) -> None:
    holdings = get_asset_balance_dao(aws)
    for symbol, quantity in [("ETH", "2"), ("BTC", "1.5"), ("ADA", "100")]:
        await holdings.upsert_asset_balance(username, symbol, quantity)

    balances = await holdings.get_all_asset_balances(username)

    assert [(b.asset_id, b.available) for b in balances] == [
        ("ADA", Decimal("100")),
        ("BTC", Decimal("1.5")),
        ("ETH", Decimal("2")),
    ]


def trade(
    username: str, kind: AssetTransactionType, quantity: str, **fields: object
) -> AssetTransactionCreate:
    return AssetTransactionCreate.model_validate(
        {
            "username": username,
            "asset_id": "BTC",
            "transaction_type": kind,
            "quantity": quantity,
            "price": "50000",
            "total_amount": str(Decimal(quantity) * 50000),
            **fields,
        }
    )


async def test_trades_move_the_holding_with_their_record(aws: AwsClients, username: str) -> None:
    trades = get_asset_transaction_dao(aws)
    holdings = get_asset_balance_dao(aws)

    bought = await trades.create_asset_transaction(trade(username, AssetTransactionType.BUY, "0.3"))
    await trades.create_asset_transaction(trade(username, AssetTransactionType.SELL, "0.1"))
    with pytest.raises(InsufficientAssetBalanceException):
        await trades.create_asset_transaction(trade(username, AssetTransactionType.SELL, "0.21"))

    assert (await holdings.get_asset_balance(username, "BTC")).available == Decimal("0.2")
    history = await trades.get_user_asset_transactions(username)
    assert [(t.transaction_type, t.quantity) for t in history.items] == [
        (AssetTransactionType.SELL, Decimal("0.1")),
        (AssetTransactionType.BUY, Decimal("0.3")),
    ]
    assert await trades.get_asset_transaction(username, bought.transaction_id) == bought
    with pytest.raises(TransactionNotFoundException):
        await trades.get_asset_transaction(username, "nope")


async def test_a_trade_id_is_recorded_once(aws: AwsClients, username: str) -> None:
    trades = get_asset_transaction_dao(aws)
    buy = trade(username, AssetTransactionType.BUY, "1", transaction_id="order-1-buy")
    await trades.create_asset_transaction(buy)

    with pytest.raises(EntityAlreadyExistsException):
        await trades.create_asset_transaction(buy)

    holding = await get_asset_balance_dao(aws).get_asset_balance(username, "BTC")
    assert holding.available == Decimal("1")


async def test_pending_trades_are_records_only_and_history_filters_by_asset(
    aws: AwsClients, username: str
) -> None:
    trades = get_asset_transaction_dao(aws)
    pending = trade(username, AssetTransactionType.BUY, "5", status=AssetTransactionStatus.PENDING)
    await trades.create_asset_transaction(pending)
    for _ in range(3):
        await trades.create_asset_transaction(
            trade(username, AssetTransactionType.BUY, "1", asset_id="ETH")
        )

    with pytest.raises(AssetBalanceNotFoundException):
        await get_asset_balance_dao(aws).get_asset_balance(username, "BTC")
    first = await trades.get_user_asset_transactions(username, asset_id="eth", limit=2)
    assert first.next_cursor is not None
    rest = await trades.get_user_asset_transactions(
        username, asset_id="ETH", limit=2, cursor=first.next_cursor
    )
    assert [t.asset_id for t in first.items + rest.items] == ["ETH", "ETH", "ETH"]
    assert rest.next_cursor is None
