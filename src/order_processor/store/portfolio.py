"""Load a user's portfolio: USD balance, asset balances, current prices."""

from __future__ import annotations

import asyncio

from order_processor.domain.assets import Asset
from order_processor.domain.portfolio import Portfolio, build_portfolio
from order_processor.exceptions import AssetNotFoundException
from order_processor.store.asset_balances import AssetBalanceDAO
from order_processor.store.assets import AssetDAO
from order_processor.store.balances import BalanceDAO


async def load_portfolio(
    username: str, balances: BalanceDAO, asset_balances: AssetBalanceDAO, assets: AssetDAO
) -> Portfolio:
    balance, holdings = await asyncio.gather(
        balances.get_balance(username), asset_balances.get_all_asset_balances(username)
    )
    held_ids = sorted({h.asset_id for h in holdings if h.total > 0})
    found = await asyncio.gather(*(_asset_or_none(assets, i) for i in held_ids))
    return build_portfolio(balance, holdings, {a.asset_id: a for a in found if a})


async def _asset_or_none(assets: AssetDAO, asset_id: str) -> Asset | None:
    try:
        return await assets.get_asset(asset_id)
    except AssetNotFoundException:
        return None
