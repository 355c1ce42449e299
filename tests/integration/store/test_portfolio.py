from __future__ import annotations

import uuid
from decimal import Decimal

from order_processor.bootstrap import (
    AwsClients,
    get_asset_balance_dao,
    get_asset_dao,
    get_balance_dao,
)
from order_processor.domain.assets import AssetCreate
from order_processor.domain.balances import BalanceTransactionCreate, TransactionType
from order_processor.store.portfolio import load_portfolio


async def test_portfolio_values_holdings_at_current_prices(aws: AwsClients, username: str) -> None:
    balances, holdings, assets = (
        get_balance_dao(aws),
        get_asset_balance_dao(aws),
        get_asset_dao(aws),
    )
    coin, token = ("P" + uuid.uuid4().hex[:6].upper() for _ in range(2))
    await assets.create_asset(AssetCreate(asset_id=coin, name="Coin", price="64000.5"))
    await assets.create_asset(AssetCreate(asset_id=token, name="Token", price="0.333"))
    await balances.create_balance(username)
    await balances.update_balance(
        BalanceTransactionCreate(
            username=username, transaction_type=TransactionType.DEPOSIT, amount="1000"
        )
    )
    await balances.update_balance(
        BalanceTransactionCreate(
            username=username, transaction_type=TransactionType.ORDER_HOLD, amount="100"
        )
    )
    await holdings.upsert_asset_balance(username, coin, "0.5")
    await holdings.upsert_asset_balance(username, token, "10")
    await assets.update_price(coin, "65000")

    portfolio = await load_portfolio(username, balances, holdings, assets)

    assert (portfolio.usd_available, portfolio.usd_held) == (Decimal("900.00"), Decimal("100.00"))
    values = {h.asset_id: (h.quantity, h.price, h.market_value) for h in portfolio.holdings}
    assert values == {
        coin: (Decimal("0.5"), Decimal("65000"), Decimal("32500.00")),
        token: (Decimal("10"), Decimal("0.333"), Decimal("3.33")),
    }
    assert portfolio.holdings_value == Decimal("32503.33")
    assert portfolio.total_value == Decimal("33503.33")
