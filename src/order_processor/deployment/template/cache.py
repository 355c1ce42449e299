"""The read model's Redis: an ElastiCache Serverless cache in the cluster's VPC, which the
gateway and the cache worker reach at `REDIS_URL` (the output `OrderCacheRedisUrl`).

Serverless means TLS always (hence `rediss://`), cluster mode always (database 0 only, and
a command's keys in one hash slot), no nodes to size: `CacheMaxDataStorageGB` and
`CacheMaxEcpuPerSecond` only cap the bill. Nothing in it is a record: every entry is a
copy of DynamoDB's, rebuilt on a miss, so the cache takes no snapshots and goes with the
stack. Access is the network's: the security groups decide who connects (no IAM auth).
"""

from __future__ import annotations

from typing import Any

from order_processor.deployment.template.names import NO_VALUE, ref, sub

CACHE = "OrderCache"
# The longest name ElastiCache allows a serverless cache is 40 characters: with a Prefix
# of more than 34 the stack fails at this resource.
CACHE_NAME = "${Prefix}-cache"
# The engine the tests run against (Debian's redis-server 7) or its fork.
MAJOR_VERSIONS = {"redis": "7", "valkey": "8"}

CACHE_PARAMETERS: dict[str, Any] = {
    "CacheSubnetIds": {
        "Type": "List<AWS::EC2::Subnet::Id>",
        "Description": "Private subnets of the EKS cluster's VPC for the read model's cache "
        "(two or three Availability Zones)",
    },
    "CacheSecurityGroupIds": {
        "Type": "List<AWS::EC2::SecurityGroup::Id>",
        "Description": "Security groups of the cache: admit TCP 6379-6380 from the pods of "
        "the gateway and the cache worker, nothing else",
    },
    "CacheEngine": {
        "Type": "String",
        "Default": "redis",
        "AllowedValues": sorted(MAJOR_VERSIONS),
        "Description": "The cache's engine: redis (7, what the tests run against) or valkey "
        "(8, its fork, cheaper on ElastiCache)",
    },
    "CacheMaxDataStorageGB": {
        "Type": "Number",
        "Default": 5,
        "MinValue": 1,
        "MaxValue": 5000,
        "Description": "The most data the cache may hold, GB: a cap on the bill; entries "
        "expire after ORDER_PROCESSOR_CACHE_TTL_SECONDS",
    },
    "CacheMaxEcpuPerSecond": {
        "Type": "Number",
        "Default": 100000,
        "MinValue": 1000,
        "MaxValue": 15000000,
        "Description": "The most ElastiCache Processing Units per second: a cap on the bill; "
        "above it commands are throttled and the gateway reads DynamoDB",
    },
}

CACHE_CONDITIONS: dict[str, Any] = {
    "CacheIsValkey": {"Fn::Equals": [ref("CacheEngine"), "valkey"]},
}


def cache_resources() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "ServerlessCacheName": sub(CACHE_NAME),
        "Description": "order-processor read model: order status, balances, prices and "
        "each user's recent events, kept by the cache worker",
        "Engine": ref("CacheEngine"),
        "MajorEngineVersion": {
            "Fn::If": ["CacheIsValkey", MAJOR_VERSIONS["valkey"], MAJOR_VERSIONS["redis"]]
        },
        "SubnetIds": ref("CacheSubnetIds"),
        "SecurityGroupIds": ref("CacheSecurityGroupIds"),
        "KmsKeyId": {"Fn::If": ["HasKmsKey", ref("KmsKeyArn"), NO_VALUE]},
        "CacheUsageLimits": {
            "DataStorage": {"Maximum": ref("CacheMaxDataStorageGB"), "Unit": "GB"},
            "ECPUPerSecond": {"Maximum": ref("CacheMaxEcpuPerSecond")},
        },
        "SnapshotRetentionLimit": 0,
    }
    # Copies, not records: deleting or replacing it loses nothing DynamoDB does not hold.
    return {
        CACHE: {
            "Type": "AWS::ElastiCache::ServerlessCache",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": properties,
        }
    }


def cache_outputs() -> dict[str, Any]:
    return {
        CACHE + "RedisUrl": {
            "Description": "REDIS_URL of the gateway and the cache worker (TLS; database 0, "
            "the only one of a serverless cache)",
            "Value": sub(f"rediss://${{{CACHE}.Endpoint.Address}}:${{{CACHE}.Endpoint.Port}}"),
        }
    }
