"""How every AWS client of the project is configured: endpoint, credentials, timeouts.

Both the synchronous boto3 clients (provisioning, CLI) and the aioboto3 clients (workers)
take their arguments from here, so an unreachable endpoint fails the same fast way in both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from botocore.config import Config

from order_processor.config import Settings
from order_processor.provision import Change, Provisioner

# An emulator accepts any credentials; LocalStack's convention is test/test. Used only when
# an endpoint is configured and the environment carries no credentials of its own.
EMULATOR_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def client_config(*, connect_timeout: float = 3, read_timeout: float = 30) -> Config:
    # "standard" retry mode retries throttling and 5xx with backoff; two attempts keep an
    # unreachable endpoint to a few seconds instead of the legacy mode's long retry storm.
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=64,
        # Every request is built by the store from checked values, and the service
        # validates it again: the client's own pass costs a tenth of each call's CPU.
        parameter_validation=False,
    )


def client_kwargs(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for `session.client(service, **kwargs)` (boto3 or aioboto3)."""
    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {"region_name": settings.region, "config": client_config()}
    if settings.endpoint_url is not None:
        kwargs["endpoint_url"] = settings.endpoint_url
        if not env.get("AWS_ACCESS_KEY_ID") and not env.get("AWS_PROFILE"):
            kwargs.update(EMULATOR_CREDENTIALS)
    return kwargs


def provision_deployment(settings: Settings) -> list[Change]:
    """Create or repair every resource of the deployment (what `order-processor
    provision` and the demo both run)."""
    clients = (sync_client(settings, s) for s in ("dynamodb", "sqs", "sns"))
    return Provisioner(*clients).apply(settings.resources())


def sync_client(settings: Settings, service: str) -> Any:
    """A boto3 client, for provisioning and the CLI (the workers use aioboto3)."""
    import boto3

    return boto3.session.Session().client(service, **client_kwargs(settings))
