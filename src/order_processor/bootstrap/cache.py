"""The read model's Redis client, built here only: from `REDIS_URL` (`rediss://` for TLS,
its certificate checked), with socket timeouts so a Redis that stops answering fails a call
within `timeout` seconds instead of hanging it, one quick retry (a pooled connection Redis
closed while idle is reopened once, not a retry storm) and a health check of a connection
idle for a while before it is used again.

`ORDER_PROCESSOR_REDIS_CLUSTER` picks the cluster-mode client (`RedisCluster`, the same
timeouts and TLS): ElastiCache Serverless speaks only cluster mode. It finds the nodes from
the URL's one endpoint and follows the slots as they move (MOVED, ASK)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from order_processor.config import Settings
from order_processor.readmodel.redis import RedisClient, RedisReadModel

TIMEOUT_SECONDS = 2.0
HEALTH_CHECK_SECONDS = 15
MAX_CONNECTIONS = 64
# A cluster node's connections: redis-py's cluster client has no waiting pool, so past its
# bound a call fails at once ("Too many connections"): room for every request in flight.
MAX_CLUSTER_CONNECTIONS = 1024


def redis_client(
    url: str, *, timeout: float = TIMEOUT_SECONDS, cluster: bool = False
) -> RedisClient:
    """A single-node client, or with `cluster` a cluster-mode one; `rediss://` is TLS for
    both. The single node's pool holds `MAX_CONNECTIONS` and a call past them waits for
    one (up to `timeout`) instead of failing: with redis-py's default pool the 65th
    concurrent request would fail as if Redis were away, and the gateway under load would
    read DynamoDB for nothing."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=1),
        "client_name": "order-processor",
    }
    if cluster:
        return RedisCluster.from_url(url, max_connections=MAX_CLUSTER_CONNECTIONS, **options)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout, **options
    )
    client: Redis = Redis.from_pool(pool)  # closing the client closes its pool
    return client


@contextlib.asynccontextmanager
async def open_read_model(settings: Settings) -> AsyncIterator[RedisReadModel]:
    """The read model over the settings' Redis (a ConfigError when `REDIS_URL` is unset),
    under the deployment's prefix, its client closed after."""
    client = redis_client(settings.required_redis_url(), cluster=settings.redis_cluster)
    try:
        yield RedisReadModel(
            client,
            prefix=f"{settings.prefix}:readmodel",
            ttl_seconds=settings.cache_ttl_seconds,
            block_seconds=TIMEOUT_SECONDS / 2,
        )
    finally:
        await client.aclose()
