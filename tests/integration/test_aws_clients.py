"""The programs' AWS clients. With ORDER_PROCESSOR_ROLE_ARN, against the emulator's STS:
they sign with the assumed role's credentials, renew them before they expire without a
request failing, and at once when AWS ends the session early. Their retries back off from
50 ms."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.retries.standard import RetryContext

from order_processor.aws import QuickBackoff, sync_clients
from order_processor.bootstrap import open_clients
from order_processor.config import Settings
from order_processor.faultproxy import FaultPlan, fault_proxy

ROLE = "arn:aws:iam::000000000000:role/op-order-worker"
SIGNED_WITH = re.compile(r"Credential=([A-Z0-9]+)/")


def signing_keys(client: Any, seen: list[str]) -> None:
    def record(request: Any, **_: Any) -> None:
        found = SIGNED_WITH.search(str(request.headers.get("Authorization", b""), "latin-1"))
        if found:
            seen.append(found.group(1))

    client.meta.events.register("before-send.*.*", record)


async def test_the_role_is_assumed_and_renewed_before_expiry_without_a_failed_request(
    settings: Settings,
) -> None:
    role = Settings.model_validate(
        settings.model_dump() | {"role_arn": ROLE, "role_external_id": "op-external"}
    )
    # The emulator accepts sessions shorter than AWS's 900 s minimum: 6 s renews every
    # 4 s or so (a third of the duration before expiry).
    short = role.model_copy(update={"role_duration_seconds": 6})
    keys: list[str] = []
    answered = 0
    async with open_clients(short, long_running=True) as clients:
        signing_keys(clients.sqs, keys)
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            await clients.sqs.list_queues()  # raises on any failure
            answered += 1
            await asyncio.sleep(0.2)

    renewals = list(dict.fromkeys(keys))
    assert answered == len(keys)
    assert all(key.startswith("ASIA") for key in renewals)  # temporary, not test/test
    assert 3 <= len(renewals) <= 6  # renewed as it nears expiry, not on every call


def test_the_cli_clients_renew_the_role_the_same_way(settings: Settings) -> None:
    role = Settings.model_validate(settings.model_dump() | {"role_arn": ROLE})
    short = role.model_copy(update={"role_duration_seconds": 6})
    [sqs] = sync_clients(short, "sqs")
    keys: list[str] = []
    signing_keys(sqs, keys)
    answered = 0
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        sqs.list_queues()
        answered += 1
        time.sleep(0.2)

    renewals = list(dict.fromkeys(keys))
    assert answered == len(keys)
    assert all(key.startswith("ASIA") for key in renewals)
    assert 3 <= len(renewals) <= 6


async def test_a_session_aws_ends_early_is_renewed_and_the_call_answered(
    settings: Settings,
) -> None:
    """AWS ends the role's session before botocore's clock says so (the fault proxy
    expires the key in use): the call that meets ExpiredToken is answered all the same,
    signed with credentials fetched anew, on each service the programs use."""
    assert settings.endpoint_url is not None
    with fault_proxy(settings.endpoint_url, FaultPlan.parse("")) as proxy:
        role = Settings.model_validate(
            settings.model_dump() | {"role_arn": ROLE, "endpoint_url": proxy.endpoint}
        )
        keys: list[str] = []
        async with open_clients(role, long_running=True) as clients:
            for client in (clients.sqs, clients.sns, clients.dynamodb):
                signing_keys(client, keys)
            await clients.sqs.list_queues()
            for call in (
                clients.sqs.list_queues,
                clients.sns.list_topics,
                clients.dynamodb.list_tables,
            ):
                expired = proxy.expire_credentials()
                await call()  # raises if the expiry reached the caller
                assert keys[-1] not in expired
        injected = proxy.stats().injected("expired-credentials")

    assert injected == 3
    assert len(set(keys)) == 4


async def test_a_programs_throttled_call_is_tried_again_within_tens_of_milliseconds(
    settings: Settings,
) -> None:
    """The programs' clients back off from 50 ms, not botocore's 1 s: six attempts of a
    call throttled every time take well under two seconds (botocore's own backoff: about
    fifteen on average), and each attempt reached the endpoint."""
    assert settings.endpoint_url is not None
    with fault_proxy(settings.endpoint_url, FaultPlan.parse("throttle.GetItem=1")) as proxy:
        proxied = settings.model_copy(update={"endpoint_url": proxy.endpoint})
        async with open_clients(proxied, long_running=True) as clients:
            started = time.monotonic()
            with pytest.raises(ClientError) as throttled:
                await clients.dynamodb.get_item(
                    TableName="any", Key={"PK": {"S": "a"}, "SK": {"S": "b"}}
                )
            elapsed = time.monotonic() - started
        attempts = proxy.stats().injected("throttle", "GetItem")

    assert throttled.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert attempts == 6
    assert elapsed < 2.0


def test_the_quick_backoff_doubles_from_fifty_milliseconds() -> None:
    backoff = QuickBackoff(jitter=lambda: 1.0)
    delays = [backoff.delay_amount(RetryContext(attempt_number=n)) for n in range(1, 10)]

    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
