"""Key builders: the one place that knows how entities map onto PK/SK."""

from __future__ import annotations

from typing import Any

from order_processor.store.dynamo import to_item

PROFILE = "PROFILE"
USD_BALANCE = "BALANCE#USD"
TRANSACTION_PREFIX = "TX#"
ASSET_BALANCE_PREFIX = "ASSET#"
ASSET_TRANSACTION_PREFIX = "ATX#"
LOCK = "LOCK"
INVENTORY = "INVENTORY"


def user_pk(username: str) -> str:
    return f"USER#{username}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return to_item({"PK": pk, "SK": sk})


def user_key(username: str) -> dict[str, Any]:
    return _key(user_pk(username), PROFILE)


def email_key(email: str) -> dict[str, Any]:
    return _key(f"EMAIL#{email}", "EMAIL")


def balance_key(username: str) -> dict[str, Any]:
    return _key(user_pk(username), USD_BALANCE)


def transaction_key(username: str, transaction_id: str) -> dict[str, Any]:
    return _key(user_pk(username), TRANSACTION_PREFIX + transaction_id)


def asset_balance_key(username: str, asset_id: str) -> dict[str, Any]:
    return _key(user_pk(username), ASSET_BALANCE_PREFIX + asset_id)


def asset_transaction_key(username: str, transaction_id: str) -> dict[str, Any]:
    return _key(user_pk(username), ASSET_TRANSACTION_PREFIX + transaction_id)


def daily_total_key(username: str, kind: str, day: str) -> dict[str, Any]:
    return _key(user_pk(username), f"LIMIT#{kind}#{day}")


def failure_key(username: str, command_id: str) -> dict[str, Any]:
    return _key(user_pk(username), f"FAILURE#{command_id}")


def lock_key(username: str) -> dict[str, Any]:
    return _key(user_pk(username), LOCK)


def order_key(order_id: str) -> dict[str, Any]:
    return _key(f"ORDER#{order_id}", "ORDER")


def asset_key(asset_id: str) -> dict[str, Any]:
    # All assets share one partition so that listing them is one ordered Query.
    return _key(INVENTORY, f"ASSET#{asset_id}")
