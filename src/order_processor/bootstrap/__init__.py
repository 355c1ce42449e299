"""The one place that builds clients, DAOs, sagas and handlers for every entrypoint.

`clients`: `open_clients(settings)` opens every aioboto3 client in one AsyncExitStack,
and the `get_*_dao` functions (the seed's names) bind DAOs to them. `programs`: the three
long-running programs (order worker, limit matcher, expiry sweeper), assembled from the
settings, for `order-processor worker ...` and `python -m workers.*` alike. Nothing here
runs at import time and no client lives in a global.
"""

from order_processor.bootstrap.clients import (
    AwsClients,
    get_admission,
    get_asset_balance_dao,
    get_asset_dao,
    get_asset_transaction_dao,
    get_balance_dao,
    get_dead_letters,
    get_order_dao,
    get_rate_store,
    get_token_manager,
    get_user_dao,
    open_clients,
)

__all__ = [
    "AwsClients",
    "get_admission",
    "get_asset_balance_dao",
    "get_asset_dao",
    "get_asset_transaction_dao",
    "get_balance_dao",
    "get_dead_letters",
    "get_order_dao",
    "get_rate_store",
    "get_token_manager",
    "get_user_dao",
    "open_clients",
]
