"""How every AWS client of the project is configured: endpoint, credentials, retries, pool.

Both the synchronous boto3 clients (provisioning, CLI) and the aioboto3 clients (workers)
take their sessions and arguments from here, so they authenticate, retry and fail the
same way.

Credentials come from botocore's default chain (environment, profile, web identity / IRSA,
ECS task role, instance role). Only when an endpoint is configured and that chain finds
nothing are an emulator's `test`/`test` used. With `ORDER_PROCESSOR_ROLE_ARN` the chain's
credentials only assume that role through STS, and the role's credentials are renewed
before they expire (botocore's refreshable credentials, the windows scaled to the session
duration). Retries: botocore's standard mode, `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE` when
set (adaptive mode included); long-running programs try more times than the CLI.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable, Mapping
from typing import Any, cast

import aioboto3
import boto3
import botocore.exceptions
import botocore.session
from aiobotocore.credentials import (
    AioAssumeRoleCredentialFetcher,
    AioCredentials,
    AioDeferredRefreshableCredentials,
)
from aiobotocore.retries.standard import (
    AioRetryHandler,
    AioRetryPolicy,
    AioStandardRetryConditions,
)
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import NoCredentialsError
from botocore.retries.quota import RetryQuota
from botocore.retries.standard import (
    DEFAULT_MAX_ATTEMPTS,
    BaseRetryBackoff,
    RetryEventAdapter,
    RetryQuotaChecker,
)

from order_processor.config import Settings
from order_processor.deployment.provision import Change, Provisioner

# An emulator accepts any credentials; LocalStack's convention is test/test.
EMULATOR_KEYS = ("test", "test")
CLI_ATTEMPTS = 3  # an unreachable endpoint fails in a few seconds
PROGRAM_ATTEMPTS = 6  # a worker rides out throttling and brief outages
CLI_POOL = 10
EXPIRED_CODES = frozenset({"ExpiredTokenException", "ExpiredToken"})
RENEWAL_ATTEMPTS = 2
FIRST_RETRY_SECONDS = 0.05
MAX_RETRY_SECONDS = 20.0


def client_config(
    settings: Settings | None = None,
    *,
    long_running: bool = False,
    environ: Mapping[str, str] | None = None,
    connect_timeout: float = 3,
    read_timeout: float = 30,
) -> Config:
    env = os.environ if environ is None else environ
    profile = _profile_config() if environ is None else {}
    retries: dict[str, Any] = {}
    # Only what the user left unsaid: botocore reads AWS_MAX_ATTEMPTS / AWS_RETRY_MODE
    # (or the profile's max_attempts / retry_mode) itself for the keys missing here.
    if not env.get("AWS_MAX_ATTEMPTS") and "max_attempts" not in profile:
        retries["total_max_attempts"] = PROGRAM_ATTEMPTS if long_running else CLI_ATTEMPTS
    if not env.get("AWS_RETRY_MODE") and "retry_mode" not in profile:
        retries["mode"] = "standard"
    pool = CLI_POOL
    if long_running and settings is not None:
        # Every message in flight may hold a connection, plus receives and heartbeats.
        pool = max(CLI_POOL, settings.concurrency + 10)
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries=cast(Any, retries),
        max_pool_connections=pool,
        # Every request is built by the store from checked values, and the service
        # validates it again: the client's own pass costs a tenth of each call's CPU.
        parameter_validation=False,
    )


def client_kwargs(settings: Settings, *, long_running: bool = False) -> dict[str, Any]:
    """Keyword arguments for `session.client(service, **kwargs)` (boto3 or aioboto3), the
    session being one of `aio_session` / `sync_session`."""
    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "config": client_config(settings, long_running=long_running),
    }
    if settings.endpoint_url is not None:
        kwargs["endpoint_url"] = settings.endpoint_url
    return kwargs


def _profile_config() -> dict[str, Any]:
    """The AWS config file's section for the active profile (empty when there is none)."""
    try:
        scoped: dict[str, Any] = botocore.session.Session().get_scoped_config()
    except botocore.exceptions.ProfileNotFound:
        return {}
    return scoped


def refresh_windows(duration_seconds: int) -> tuple[int, int]:
    """(advisory, mandatory) seconds before expiry at which assumed credentials are
    renewed: botocore's 15 and 10 minutes for an hour's session, scaled down for shorter
    ones (a 15-minute session would otherwise be renewed on every call)."""
    return min(15 * 60, duration_seconds // 3), min(10 * 60, duration_seconds // 6)


def _renewing(credentials: Any, advisory: int, mandatory: int) -> Any:
    """botocore keeps the renewal windows as attributes of refreshable credentials (its
    constructor takes them, the deferred variant's does not)."""
    credentials._advisory_refresh_timeout = advisory
    credentials._mandatory_refresh_timeout = mandatory
    return credentials


def _sign_with(core: Any, credentials: Any) -> None:
    """The session's credentials slot, what every client it creates signs with: how
    botocore itself holds credentials it did not resolve (`set_credentials` takes only
    static keys)."""
    core._credentials = credentials


def _assume_role_args(settings: Settings) -> dict[str, Any]:
    args: dict[str, Any] = {
        "RoleSessionName": settings.role_session_name,
        "DurationSeconds": settings.role_duration_seconds,
    }
    if settings.role_external_id:
        args["ExternalId"] = settings.role_external_id
    return args


def _assume_role(
    core: Any, source: Any, settings: Settings, sts: Any, fetcher: Any, renewable: Any
) -> None:
    """Sign `core`'s clients with the role's credentials, fetched through STS (with the
    `sts` client factory, as `source`) and renewed before they expire; botocore's classes
    or aiobotocore's."""
    if source is None:
        raise NoCredentialsError()
    advisory, mandatory = refresh_windows(settings.role_duration_seconds)
    assume = fetcher(
        client_creator=sts,
        source_credentials=source,
        role_arn=settings.role_arn,
        extra_args=_assume_role_args(settings),
        expiry_window_seconds=advisory,
    )
    credentials = renewable(refresh_using=assume.fetch_credentials, method="assume-role")
    _sign_with(core, _renewing(credentials, advisory, mandatory))
    events = core.get_component("event_emitter")
    events.register_first(
        "needs-retry", functools.partial(_renew_when_expired, assume, credentials)
    )


def _renew_when_expired(
    fetcher: Any, credentials: Any, response: Any = None, attempts: int = 1, **_: Any
) -> int | None:
    """botocore renews the role's credentials by its own clock only: a session AWS ends
    sooner (`ExpiredTokenException`, `ExpiredToken`) would fail every call until then. So
    on that answer the fetcher's cache and the credentials in use are dropped, and the
    call is tried again at once (a `needs-retry` handler answering 0), signed with
    credentials fetched anew; a few times at most."""
    if response is None or attempts > RENEWAL_ATTEMPTS:
        return None
    if response[1].get("Error", {}).get("Code") not in EXPIRED_CODES:
        return None
    cache = getattr(fetcher, "_cache", None)
    if isinstance(cache, dict):
        cache.clear()
    credentials._frozen_credentials = None  # botocore's mark of credentials to fetch
    return 0


async def aio_session(settings: Settings) -> aioboto3.Session:
    """A session whose clients sign with the default chain's credentials (resolved once,
    without blocking the event loop), an emulator's when an endpoint is set and the chain
    has none, or the assumed role's."""
    core = AioSession()
    source: Any = await core.get_credentials()
    if source is None and settings.endpoint_url is not None:
        core.set_credentials(*EMULATOR_KEYS)
        source = AioCredentials(*EMULATOR_KEYS)
    if settings.role_arn is not None:
        sts = functools.partial(
            AioSession().create_client, **client_kwargs(settings, long_running=True)
        )
        _assume_role(
            core,
            source,
            settings,
            sts,
            AioAssumeRoleCredentialFetcher,
            AioDeferredRefreshableCredentials,
        )
    return aioboto3.Session(botocore_session=core, region_name=settings.region)


def sync_session(settings: Settings) -> boto3.session.Session:
    core = botocore.session.Session()
    source: Any = core.get_credentials()
    if source is None and settings.endpoint_url is not None:
        core.set_credentials(*EMULATOR_KEYS)
        source = Credentials(*EMULATOR_KEYS)
    if settings.role_arn is not None:
        sts = functools.partial(core.create_client, **client_kwargs(settings))
        _assume_role(
            core, source, settings, sts, AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
        )
    return boto3.session.Session(botocore_session=core, region_name=settings.region)


def provision_deployment(settings: Settings) -> list[Change]:
    """Create or repair every resource of the deployment (what `order-processor
    provision` and the demo both run)."""
    return Provisioner(*sync_clients(settings, "dynamodb", "sqs", "sns")).apply(
        settings.resources()
    )


def sync_clients(settings: Settings, *services: str) -> list[Any]:
    """boto3 clients of one session (the credential chain resolved once), for
    provisioning and the CLI (the workers use aioboto3)."""
    session = sync_session(settings)
    return [session.client(service, **client_kwargs(settings)) for service in services]


def sync_client(settings: Settings, service: str) -> Any:
    [client] = sync_clients(settings, service)
    return client


class QuickBackoff(BaseRetryBackoff):
    """botocore's standard backoff (full jitter, doubling, capped at 20 s), from 50 ms
    instead of 1 s: a throttled or failed call is tried again within tens of
    milliseconds, then ever more patiently (50, 100, 200, 400, 800 ms at most for the
    five retries). What the AWS SDKs for DynamoDB do (the Java SDK starts at 25 ms);
    botocore's 1 s first step made every throttled market order half a second slower."""

    def __init__(self, jitter: Callable[[], float] = random.random) -> None:
        self.jitter = jitter

    def delay_amount(self, context: Any) -> float:
        step: float = FIRST_RETRY_SECONDS * 2 ** (int(context.attempt_number) - 1)
        return self.jitter() * min(step, MAX_RETRY_SECONDS)


def quick_retries(client: Any) -> None:
    """Replace an aiobotocore client's standard-mode retry handler with one that backs off
    by QuickBackoff (same checks, attempts and retry quota). Other modes are left as the
    user chose them (`AWS_RETRY_MODE=adaptive`, for one)."""
    if client.meta.config.retries.get("mode") != "standard":
        return
    service = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{service}"
    client.meta.events.unregister(f"needs-retry.{service}", unique_id=unique_id)
    quota = RetryQuotaChecker(RetryQuota())
    client.meta.events.register(f"after-call.{service}", quota.release_retry_quota)
    attempts = client.meta.config.retries.get("total_max_attempts", DEFAULT_MAX_ATTEMPTS)
    handler = AioRetryHandler(
        retry_policy=AioRetryPolicy(
            retry_checker=AioStandardRetryConditions(max_attempts=attempts),
            retry_backoff=QuickBackoff(),
        ),
        retry_event_adapter=RetryEventAdapter(),
        retry_quota=cast(Any, quota),  # the stubs say RetryQuota; botocore passes this
    )
    client.meta.events.register(f"needs-retry.{service}", handler.needs_retry, unique_id=unique_id)
