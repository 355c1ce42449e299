"""The one place that builds AWS clients and hands out DAOs over them.

`open_clients` opens every aioboto3 client in one AsyncExitStack; the `get_*_dao`
functions (the seed's names) bind a DAO to those clients and to the deployment's tables.
Nothing here runs at import time and no client lives in a global.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from order_processor.aws import aio_session, client_kwargs, quick_retries
from order_processor.config import ConfigError, Settings
from order_processor.deployment.resources import Resources
from order_processor.handlers.admission import Admission
from order_processor.ops.dead_letters import DeadLetters
from order_processor.security.tokens import TokenManager, TokenPolicy
from order_processor.store.asset_balances import AssetBalanceDAO, AssetTransactionDAO
from order_processor.store.assets import AssetDAO
from order_processor.store.balances import BalanceDAO
from order_processor.store.orders import OrderDAO
from order_processor.store.rates import ExchangeRateStore
from order_processor.store.users import UserDAO

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_sns import SNSClient
    from types_aiobotocore_sqs import SQSClient


@dataclass(frozen=True)
class AwsClients:
    dynamodb: DynamoDBClient
    sqs: SQSClient
    sns: SNSClient
    resources: Resources

    async def queue_url(self, name: str) -> str:
        url: str = (await self.sqs.get_queue_url(QueueName=name))["QueueUrl"]
        return url

    async def topic_arn(self, queue_url: str) -> str:
        """The events topic's ARN, derived from a queue's ARN (same region and account),
        without creating anything."""
        attributes = await self.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )
        _, _, _, region, account, _ = attributes["Attributes"]["QueueArn"].split(":")
        return f"arn:aws:sns:{region}:{account}:{self.resources.events_topic}"


@contextlib.asynccontextmanager
async def open_clients(
    settings: Settings, *, long_running: bool = False
) -> AsyncIterator[AwsClients]:
    """`long_running`: a worker's clients (more retries, a pool sized to the concurrency)."""
    session = await aio_session(settings)
    kwargs = client_kwargs(settings, long_running=long_running)
    async with contextlib.AsyncExitStack() as stack:
        dynamodb, sqs, sns = [
            await stack.enter_async_context(session.client(service, **kwargs))
            for service in ("dynamodb", "sqs", "sns")
        ]
        if long_running:
            for client in (dynamodb, sqs, sns):
                quick_retries(client)
        yield AwsClients(dynamodb, sqs, sns, settings.resources())


def get_token_manager(settings: Settings) -> TokenManager:
    if settings.jwt_secret is None:
        raise ConfigError(
            "ORDER_PROCESSOR_JWT_SECRET is required: commands are authenticated with it"
        )
    maximum = timedelta(minutes=settings.max_token_minutes)
    policy = TokenPolicy(
        customer_lifetime=min(TokenPolicy.customer_lifetime, maximum),
        max_lifetime=maximum,
        service_lifetime=timedelta(minutes=settings.service_token_minutes),
        clock_skew=settings.clock_skew,
    )
    return TokenManager(settings.jwt_secret.get_secret_value(), policy=policy)


def get_admission(settings: Settings) -> Admission:
    return Admission(get_token_manager(settings), clock_skew=settings.clock_skew)


def get_user_dao(clients: AwsClients) -> UserDAO:
    return UserDAO(clients.dynamodb, clients.resources.users_table)


def get_balance_dao(clients: AwsClients) -> BalanceDAO:
    return BalanceDAO(clients.dynamodb, clients.resources.users_table)


def get_asset_balance_dao(clients: AwsClients) -> AssetBalanceDAO:
    return AssetBalanceDAO(clients.dynamodb, clients.resources.users_table)


def get_asset_transaction_dao(clients: AwsClients) -> AssetTransactionDAO:
    return AssetTransactionDAO(clients.dynamodb, clients.resources.users_table)


def get_order_dao(clients: AwsClients) -> OrderDAO:
    return OrderDAO(clients.dynamodb, clients.resources.orders_table)


def get_asset_dao(clients: AwsClients) -> AssetDAO:
    return AssetDAO(clients.dynamodb, clients.resources.inventory_table)


def get_rate_store(clients: AwsClients, settings: Settings) -> ExchangeRateStore:
    return ExchangeRateStore(
        clients.dynamodb, clients.resources.inventory_table, clock_skew=settings.clock_skew
    )


async def get_dead_letters(clients: AwsClients, queue: str = "commands") -> DeadLetters:
    """The dead letters of the commands queue, or of the analytics queue (events it could
    not count)."""
    resources = clients.resources
    spec = resources.analytics_queue if queue == "analytics" else resources.commands_queue
    assert spec.dead_letter is not None
    urls = [await clients.queue_url(name) for name in (spec.dead_letter.name, spec.name)]
    return DeadLetters(clients.sqs, urls[0], urls[1], fifo=spec.fifo)
