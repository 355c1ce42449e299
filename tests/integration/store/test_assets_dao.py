from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_processor.bootstrap import AwsClients, get_asset_dao
from order_processor.domain.assets import AssetCreate, AssetUpdate
from order_processor.exceptions import (
    AssetNotFoundException,
    EntityAlreadyExistsException,
    StalePriceException,
)


def asset_id() -> str:
    return "A" + uuid.uuid4().hex[:8].upper()


async def test_an_asset_round_trips_with_an_exact_price(aws: AwsClients) -> None:
    assets = get_asset_dao(aws)
    symbol = asset_id()

    created = await assets.create_asset(
        AssetCreate(asset_id=symbol.lower(), name="Bitcoin", price="64123.12345678")
    )

    stored = await assets.get_asset(symbol)
    assert stored == created
    assert stored.asset_id == symbol
    assert stored.price == Decimal("64123.12345678")
    assert isinstance(stored.price, Decimal)
    assert stored.precision == 8
    with pytest.raises(EntityAlreadyExistsException):
        await assets.create_asset(AssetCreate(asset_id=symbol, name="Again", price="1"))


async def test_price_updates_are_decimal_only(aws: AwsClients) -> None:
    assets = get_asset_dao(aws)
    symbol = asset_id()
    await assets.create_asset(AssetCreate(asset_id=symbol, name="Ether", price="3000"))

    updated = await assets.update_price(symbol, "3100.5")

    assert updated.price == Decimal("3100.50000000")
    assert (await assets.get_asset(symbol)).price == Decimal("3100.5")
    with pytest.raises(ValueError, match="not floats"):
        await assets.update_price(symbol, 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 8 decimal places"):
        await assets.update_price(symbol, "1.123456789")
    with pytest.raises(AssetNotFoundException):
        await assets.update_price(asset_id(), "1")


async def test_assets_can_be_deactivated_and_renamed(aws: AwsClients) -> None:
    assets = get_asset_dao(aws)
    symbol = asset_id()
    await assets.create_asset(AssetCreate(asset_id=symbol, name="Doge", price="0.1"))

    await assets.deactivate_asset(symbol)
    assert not (await assets.get_asset(symbol)).is_active
    await assets.activate_asset(symbol)
    renamed = await assets.update_asset(symbol, AssetUpdate(name="Dogecoin", precision=2))

    assert renamed.is_active
    assert (renamed.name, renamed.precision) == ("Dogecoin", 2)
    with pytest.raises(AssetNotFoundException):
        await assets.deactivate_asset(asset_id())


async def test_assets_are_listed_by_id_across_pages(aws: AwsClients) -> None:
    assets = get_asset_dao(aws)
    symbols = sorted(asset_id() for _ in range(5))
    for number, symbol in enumerate(symbols):
        await assets.create_asset(AssetCreate(asset_id=symbol, name=symbol, price=str(number + 1)))
    await assets.deactivate_asset(symbols[2])

    listed, cursor = [], None
    while True:
        page = await assets.get_assets(limit=2, cursor=cursor)
        listed += [a.asset_id for a in page.assets]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    active = (await assets.get_assets(limit=100, active_only=True)).assets

    mine = [s for s in listed if s in symbols]
    assert mine == symbols
    assert listed == sorted(listed)
    assert symbols[2] not in {a.asset_id for a in active}
    assert set(symbols) - {symbols[2]} <= {a.asset_id for a in active}


async def test_an_observed_price_is_written_once_and_never_by_an_older_or_equal_update(
    aws: AwsClients,
) -> None:
    """Ordered by the update's signed time; at the same time only the same update (its
    redelivery, which must reach the matching again) counts as current."""
    at = datetime.now(UTC) + timedelta(minutes=1)  # after its listing
    assets = dataclasses.replace(get_asset_dao(aws), clock=lambda: at)
    symbol = asset_id()
    await get_asset_dao(aws).create_asset(AssetCreate(asset_id=symbol, name="Ordered", price="1"))

    await assets.update_price(symbol, "100", as_of=at, command_id="p-1")
    again = await assets.update_price(symbol, "100", as_of=at, command_id="p-1")
    for when, command in [(at, "p-2"), (at - timedelta(microseconds=1), "p-3")]:
        with pytest.raises(StalePriceException):
            await assets.update_price(symbol, "80", as_of=when, command_id=command)

    assert (again.price, again.price_command_id) == (Decimal("100"), "p-1")
    later = await assets.update_price(
        symbol, "80", as_of=at + timedelta(seconds=1), command_id="p-4"
    )
    assert (await assets.get_asset(symbol)) == later
    assert (later.price, later.price_as_of) == (Decimal("80"), at + timedelta(seconds=1))
