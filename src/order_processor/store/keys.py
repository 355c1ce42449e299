"""Key builders: the one place that knows how entities map onto PK/SK."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from order_processor.domain.assets import normalise_asset_id
from order_processor.domain.currencies import BASE_CURRENCY
from order_processor.domain.triggers import PriceMove
from order_processor.store.dynamo import to_item

PROFILE = "PROFILE"
BALANCE_PREFIX = "BALANCE#"
USD_BALANCE = BALANCE_PREFIX + BASE_CURRENCY
LIQUIDITY_PREFIX = "LIQUIDITY#"
RATES = "RATES"
RATE_PREFIX = "RATE#"
TRANSACTION_PREFIX = "TX#"
ASSET_BALANCE_PREFIX = "ASSET#"
ASSET_TRANSACTION_PREFIX = "ATX#"
DAILY_TOTAL_PREFIX = "LIMIT#"
LOCK = "LOCK"
INVENTORY = "INVENTORY"
ORDER = "ORDER"
EXPIRY_SHARD = "EXPIRING"
IN_FLIGHT_SHARDS = 16


def user_pk(username: str) -> str:
    return f"USER#{username}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return to_item({"PK": pk, "SK": sk})


def user_key(username: str) -> dict[str, Any]:
    return _key(user_pk(username), PROFILE)


def email_key(email: str) -> dict[str, Any]:
    return _key(f"EMAIL#{email}", "EMAIL")


def balance_key(username: str, currency: str = BASE_CURRENCY) -> dict[str, Any]:
    return _key(user_pk(username), BALANCE_PREFIX + currency)


def liquidity_key(username: str, currency: str) -> dict[str, Any]:
    """The exchange's liquidity account in `currency`, its part kept with each user's
    books: written in the user's own transactions, so conversions of different users
    never contend for one item; the account is the sum of its parts (ledger audit)."""
    return _key(user_pk(username), LIQUIDITY_PREFIX + currency)


def rate_key(currency: str) -> dict[str, Any]:
    # All rates share one partition so that listing them is one Query.
    return _key(RATES, RATE_PREFIX + currency)


def transaction_key(username: str, transaction_id: str) -> dict[str, Any]:
    return _key(user_pk(username), TRANSACTION_PREFIX + transaction_id)


def asset_balance_key(username: str, asset_id: str) -> dict[str, Any]:
    return _key(user_pk(username), ASSET_BALANCE_PREFIX + asset_id)


def asset_transaction_key(username: str, transaction_id: str) -> dict[str, Any]:
    return _key(user_pk(username), ASSET_TRANSACTION_PREFIX + transaction_id)


def daily_total_key(username: str, kind: str, day: str) -> dict[str, Any]:
    return _key(user_pk(username), f"{DAILY_TOTAL_PREFIX}{kind}#{day}")


def failure_key(username: str, command_id: str) -> dict[str, Any]:
    return _key(user_pk(username), f"FAILURE#{command_id}")


def lock_key(username: str) -> dict[str, Any]:
    return _key(user_pk(username), LOCK)


def order_key(order_id: str) -> dict[str, Any]:
    return _key(f"ORDER#{order_id}", ORDER)


def asset_key(asset_id: str) -> dict[str, Any]:
    # All assets share one partition so that listing them is one ordered Query.
    return _key(INVENTORY, f"ASSET#{asset_id}")


# The orders' sparse indexes: each key names one asset's side of the book.


def book_key(asset_id: str, side: str) -> str:
    """OpenLimitOrders: the QUEUED limit orders of one asset and side (BUY or SELL)."""
    return f"{normalise_asset_id(asset_id)}#{side}"


def trail_key(asset_id: str, side: str) -> str:
    """TrailingStops: the QUEUED trailing stops of one asset and side (BUY or SELL)."""
    return f"{normalise_asset_id(asset_id)}#{side}"


def stop_key(asset_id: str, *, rise: bool) -> str:
    """OpenStopOrders: the QUEUED conditional orders of one asset a rise (or a fall)
    triggers."""
    return f"{normalise_asset_id(asset_id)}#{'RISE' if rise else 'FALL'}"


@dataclass(frozen=True)
class ReachIndex:
    """The sparse index of the QUEUED orders a move of the market reaches: `key` the
    asset, `price` the reach price (`domain.triggers.reach_price`), so that one query
    (`price >=` on a fall, `<=` on a rise) finds every order one direction triggers or
    moves."""

    name: str
    key: str
    price: str


REACH_INDEXES = {
    PriceMove.FALL: ReachIndex("FallTriggers", "fall_key", "fall_price"),
    PriceMove.RISE: ReachIndex("RiseTriggers", "rise_key", "rise_price"),
}


def reach_key(asset_id: str) -> str:
    return normalise_asset_id(asset_id)


def in_flight_shard(order_id: str) -> str:
    """InFlightIndex: PENDING and PROCESSING orders, spread over the shards."""
    return in_flight_shard_key(zlib.crc32(order_id.encode()) % IN_FLIGHT_SHARDS)


def in_flight_shard_key(shard: int) -> str:
    return f"IN_FLIGHT#{shard}"
