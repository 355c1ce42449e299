"""Settings from the environment, validated once and frozen.

`Settings.from_env()` is the only place that reads configuration variables; everything
else receives a `Settings`. A wrong value raises `ConfigError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from order_processor.deployment.resources import Resources
from order_processor.domain.currencies import BASE_CURRENCY, DEFAULT_CURRENCIES, currency_code


class QueueKind(StrEnum):
    FIFO = "fifo"
    STANDARD = "standard"


PositiveMoney = Annotated[
    Decimal, Field(gt=0, max_digits=14, decimal_places=2, allow_inf_nan=False)
]

MIN_JWT_SECRET_BYTES = 32
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
SECRETS = ("jwt_secret", "redis_url")  # never shown, not even in an error


class ConfigError(ValueError):
    """A configuration variable is missing or has a wrong value."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str | None = None
    region: str = "us-east-1"
    prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")] = "op"
    queue_kind: QueueKind = QueueKind.FIFO
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 32
    # How long a received message stays invisible: a message whose receive answer was lost
    # (or whose worker died) comes back after this, and on FIFO its user's group waits as
    # long; a command that runs longer is kept invisible by heartbeats every half of it.
    visibility_timeout: Annotated[int, Field(ge=1, le=43_200)] = 10
    # The queues' redrive: after this many receives SQS moves a message to its DLQ, whatever
    # the cause. A backstop, sized to outlast an hour of transient trouble; what decides is
    # `max_failures`, the unforeseen failures of one command (a bug, a permission).
    max_receive_count: Annotated[int, Field(ge=1, le=1000)] = 50
    max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    shutdown_grace_seconds: Annotated[int, Field(ge=0, le=3600)] = 20
    jwt_secret: SecretStr | None = None
    max_order_value: PositiveMoney = Decimal("10000.00")
    daily_deposit_limit: PositiveMoney = Decimal("10000.00")
    daily_withdraw_limit: PositiveMoney = Decimal("5000.00")
    max_token_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    service_token_minutes: Annotated[int, Field(ge=1, le=60)] = 5
    clock_skew_seconds: Annotated[int, Field(ge=0, le=600)] = 30
    recovery_age_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 300
    stop_slippage_percent: Annotated[
        Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2, allow_inf_nan=False)
    ] = Decimal("5")
    # The currencies held (ISO 4217 codes, the base USD among them), the spread a
    # conversion keeps off the mid rate, in percent, and the oldest rate a decision uses.
    currencies: tuple[str, ...] = DEFAULT_CURRENCIES
    fx_spread_percent: Annotated[
        Decimal, Field(ge=0, lt=10, max_digits=6, decimal_places=4, allow_inf_nan=False)
    ] = Decimal("0.50")
    fx_max_age_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 300
    metrics_host: Annotated[str, Field(min_length=1, max_length=255)] = "0.0.0.0"
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    # An IAM role to assume through STS (cross-account access); its credentials are
    # renewed before they expire. AWS accepts 900 s to the role's maximum session.
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")] | None = None
    role_external_id: Annotated[str, Field(min_length=2, max_length=1224)] | None = None
    role_session_name: Annotated[str, Field(pattern=r"^[\w+=,.@-]{2,64}$")] = "order-processor"
    role_duration_seconds: Annotated[int, Field(ge=900, le=43_200)] = 3600
    # The read model's Redis (the gateway's and the cache worker's): a URL that can carry a
    # password, so a secret; unset: no cache configured. Every entry's bound on staleness.
    redis_url: SecretStr | None = None
    cache_ttl_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] = 60
    # Speak cluster mode to that Redis (ElastiCache Serverless knows no other): database
    # 0 only, over TCP.
    redis_cluster: bool = False
    # The gateway (`order-processor gateway`): where it listens, and its limits.
    gateway_host: Annotated[str, Field(min_length=1, max_length=255)] = "127.0.0.1"
    gateway_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    gateway_max_body_bytes: Annotated[int, Field(ge=256, le=1024 * 1024)] = 16 * 1024
    gateway_login_attempts: Annotated[int, Field(ge=1, le=1000)] = 5
    gateway_login_attempts_per_address: Annotated[int, Field(ge=1, le=100_000)] = 20
    gateway_login_lockout_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 900
    gateway_rate_per_user: Annotated[float, Field(gt=0, le=100_000)] = 20.0
    gateway_burst_per_user: Annotated[int, Field(ge=1, le=100_000)] = 40
    gateway_rate_per_address: Annotated[float, Field(gt=0, le=100_000)] = 50.0
    gateway_burst_per_address: Annotated[int, Field(ge=1, le=100_000)] = 100
    gateway_streams_per_user: Annotated[int, Field(ge=1, le=10_000)] = 5
    gateway_streams_per_address: Annotated[int, Field(ge=1, le=100_000)] = 20
    # The proxies (an Ingress, a load balancer: addresses or CIDRs, comma-separated) whose
    # X-Forwarded-For names the client; unset: the peer is the client. Behind a proxy the
    # per-address limits would otherwise count every user as the proxy.
    gateway_trusted_proxies: Annotated[str, Field(max_length=2000)] | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("jwt_secret")
    @classmethod
    def _secret_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_JWT_SECRET_BYTES} bytes")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(REDIS_SCHEMES):
            raise ValueError(f"must start with {' or '.join(REDIS_SCHEMES)}")
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_url(cls, value: bool, info: ValidationInfo) -> bool:
        url = info.data.get("redis_url")
        if value and url is not None and not _cluster_can_use(url.get_secret_value()):
            raise ValueError("a cluster needs REDIS_URL redis:// or rediss:// on database 0")
        return value

    @field_validator("currencies", mode="before")
    @classmethod
    def _currency_list(cls, value: object) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError("a comma-separated list of ISO 4217 codes")
        codes = tuple(
            dict.fromkeys(currency_code(str(item)) for item in items if str(item).strip())
        )
        if BASE_CURRENCY not in codes:
            raise ValueError(f"must include the base currency {BASE_CURRENCY}")
        return codes

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        raw: dict[str, str] = {}
        for field, variable in ENVIRONMENT_VARIABLES.items():
            value = env.get(variable, "").strip()
            if value:
                raw[field] = value
        if "region" not in raw and env.get("AWS_DEFAULT_REGION"):
            raw["region"] = env["AWS_DEFAULT_REGION"]
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from exc

    def to_env(self) -> dict[str, str]:
        """The environment that gives these settings back through `from_env`: how they
        are passed to child processes (workers, the demo's programs), every one of them."""
        env: dict[str, str] = {}
        for field, variable in ENVIRONMENT_VARIABLES.items():
            value = getattr(self, field)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, Decimal):
                value = format(value, "f")
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, tuple):
                value = ",".join(value)
            env[variable] = str(value)
        return env

    def overridden(self, options: Mapping[str, object]) -> Settings:
        """These settings with some replaced by a program's options (`concurrency` from
        `--concurrency`), validated as the environment's are: `model_copy(update=...)`
        would take any value. A wrong one raises `ConfigError` naming the option."""
        try:
            return type(self).model_validate({**self.model_dump(), **options})
        except ValidationError as exc:
            raise ConfigError(_describe(exc, {field: _option(field) for field in options})) from exc

    def with_endpoint(self, endpoint_url: str) -> Settings:
        return self.model_copy(update={"endpoint_url": endpoint_url.rstrip("/")})

    def required_redis_url(self) -> str:
        """The read model's Redis, for a program that cannot run without it."""
        if self.redis_url is None:
            raise ConfigError("REDIS_URL is not set: the read model's Redis (redis://host:6379/0)")
        return self.redis_url.get_secret_value()

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.clock_skew_seconds)

    @property
    def fx_max_age(self) -> timedelta:
        return timedelta(seconds=self.fx_max_age_seconds)

    @property
    def recovery_age(self) -> timedelta:
        return timedelta(seconds=self.recovery_age_seconds)

    def resources(self) -> Resources:
        return Resources(
            self.prefix,
            fifo_commands=self.queue_kind is QueueKind.FIFO,
            visibility_timeout=self.visibility_timeout,
            max_receive_count=self.max_receive_count,
        )


ENVIRONMENT_VARIABLES: dict[str, str] = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "region": "AWS_REGION",
    "prefix": "ORDER_PROCESSOR_PREFIX",
    "queue_kind": "ORDER_PROCESSOR_QUEUE_KIND",
    "concurrency": "ORDER_PROCESSOR_CONCURRENCY",
    "visibility_timeout": "ORDER_PROCESSOR_VISIBILITY_TIMEOUT",
    "max_receive_count": "ORDER_PROCESSOR_MAX_RECEIVE_COUNT",
    "max_failures": "ORDER_PROCESSOR_MAX_FAILURES",
    "shutdown_grace_seconds": "ORDER_PROCESSOR_SHUTDOWN_GRACE_SECONDS",
    "jwt_secret": "ORDER_PROCESSOR_JWT_SECRET",
    "max_order_value": "ORDER_PROCESSOR_MAX_ORDER_VALUE",
    "daily_deposit_limit": "ORDER_PROCESSOR_DAILY_DEPOSIT_LIMIT",
    "daily_withdraw_limit": "ORDER_PROCESSOR_DAILY_WITHDRAW_LIMIT",
    "max_token_minutes": "ORDER_PROCESSOR_MAX_TOKEN_MINUTES",
    "service_token_minutes": "ORDER_PROCESSOR_SERVICE_TOKEN_MINUTES",
    "clock_skew_seconds": "ORDER_PROCESSOR_CLOCK_SKEW_SECONDS",
    "recovery_age_seconds": "ORDER_PROCESSOR_RECOVERY_AGE_SECONDS",
    "stop_slippage_percent": "ORDER_PROCESSOR_STOP_SLIPPAGE_PERCENT",
    "currencies": "ORDER_PROCESSOR_CURRENCIES",
    "fx_spread_percent": "ORDER_PROCESSOR_FX_SPREAD_PERCENT",
    "fx_max_age_seconds": "ORDER_PROCESSOR_FX_MAX_AGE_SECONDS",
    "metrics_host": "ORDER_PROCESSOR_METRICS_HOST",
    "metrics_port": "ORDER_PROCESSOR_METRICS_PORT",
    "role_arn": "ORDER_PROCESSOR_ROLE_ARN",
    "role_external_id": "ORDER_PROCESSOR_ROLE_EXTERNAL_ID",
    "role_session_name": "ORDER_PROCESSOR_ROLE_SESSION_NAME",
    "role_duration_seconds": "ORDER_PROCESSOR_ROLE_DURATION_SECONDS",
    "redis_url": "REDIS_URL",
    "cache_ttl_seconds": "ORDER_PROCESSOR_CACHE_TTL_SECONDS",
    "redis_cluster": "ORDER_PROCESSOR_REDIS_CLUSTER",
    "gateway_host": "ORDER_PROCESSOR_GATEWAY_HOST",
    "gateway_port": "ORDER_PROCESSOR_GATEWAY_PORT",
    "gateway_max_body_bytes": "ORDER_PROCESSOR_GATEWAY_MAX_BODY_BYTES",
    "gateway_login_attempts": "ORDER_PROCESSOR_GATEWAY_LOGIN_ATTEMPTS",
    "gateway_login_attempts_per_address": "ORDER_PROCESSOR_GATEWAY_LOGIN_ATTEMPTS_PER_ADDRESS",
    "gateway_login_lockout_seconds": "ORDER_PROCESSOR_GATEWAY_LOGIN_LOCKOUT_SECONDS",
    "gateway_rate_per_user": "ORDER_PROCESSOR_GATEWAY_RATE_PER_USER",
    "gateway_burst_per_user": "ORDER_PROCESSOR_GATEWAY_BURST_PER_USER",
    "gateway_rate_per_address": "ORDER_PROCESSOR_GATEWAY_RATE_PER_ADDRESS",
    "gateway_burst_per_address": "ORDER_PROCESSOR_GATEWAY_BURST_PER_ADDRESS",
    "gateway_streams_per_user": "ORDER_PROCESSOR_GATEWAY_STREAMS_PER_USER",
    "gateway_streams_per_address": "ORDER_PROCESSOR_GATEWAY_STREAMS_PER_ADDRESS",
    "gateway_trusted_proxies": "ORDER_PROCESSOR_GATEWAY_TRUSTED_PROXIES",
}


def _cluster_can_use(url: str) -> bool:
    """A cluster has no unix socket and no database but 0 (SELECT is refused)."""
    parts = urlsplit(url)
    return parts.scheme in ("redis", "rediss") and parts.path.strip("/") in ("", "0")


def _describe(exc: ValidationError, names: Mapping[str, str] = ENVIRONMENT_VARIABLES) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        variable = names.get(field, field)
        shown = "<hidden>" if field in SECRETS else repr(error.get("input"))
        problems.append(f"{variable}={shown}: {error['msg']}")
    return "invalid configuration: " + "; ".join(problems)


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")
