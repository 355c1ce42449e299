"""Found by the issue-21 attacker; each test failed first.

`awserrors.is_transient` is not what botocore's standard
mode retries, and misses the credential failures of a running program, so AWS being
briefly unwell spends a good command's failure budget and sends it to the DLQ.

awserrors' docstring: "what botocore's standard retry mode retries (its transient and
throttling checkers, so the two lists never drift apart)". Standard mode is four checkers
(`StandardRetryConditions`): transient, throttled, *modeled* retryable errors, and the
special cases (STS's `IDPCommunicationError`, DynamoDB's CRC32 mismatch); awserrors asks
only the first two. README: "transient (..., ExpiredToken)"; awserrors lists only
DynamoDB's spelling `ExpiredTokenException`, not SQS's and SNS's `ExpiredToken`
(aws.EXPIRED_CODES has both).

In a running worker these reach the handler as they are: a credential refresh that fails
in botocore's mandatory window is raised out of the DynamoDB or SNS call that needed the
credentials (IRSA: STS's error; an ECS task role or EKS Pod Identity: botocore's
CredentialRetrievalError), and the publisher re-raises an SNS error it does not think
transient (an `ExpiredToken` the renewal hook let through: no role configured, or met on a
call's third attempt). Each is then taken for a bug: counted whenever the counter's own
call gets through (it needs the same credentials, so mostly when the credential source
flaps), handed back on the bug backoff, and after five counts moved to the DLQ with every
later command about the same order. The sure consequence is at start-up:
tests/e2e/test_identity_provider_away.py (the program exits instead of waiting).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError, CredentialRetrievalError
from botocore.retries.standard import RetryContext, StandardRetryConditions

from order_processor.awserrors import is_transient
from order_processor.messaging.consumer import Retry
from tests.unit.test_command_handler import delivery, deposit, flaky_handler
from tests.unit.test_saga import USER

_session = botocore.session.get_session()


def client_error(service: str, operation: str, code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "attack 21"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


def botocore_retries(service: str, operation: str, error: ClientError) -> bool:
    model = _session.get_service_model(service).operation_model(operation)
    context = RetryContext(
        attempt_number=1,
        operation_model=model,
        parsed_response=error.response,
        http_response=None,
    )
    return bool(StandardRetryConditions(max_attempts=6).is_retryable(context))


DRIFT = [
    # STS cannot reach the web identity provider (IRSA's credentials): botocore's
    # special case, "often a transient error caused by network conditions".
    ("sts", "AssumeRoleWithWebIdentity", "IDPCommunicationError", 400),
    # A modeled retryable error of DynamoDB (multi-Region strongly consistent tables).
    ("dynamodb", "UpdateItem", "ReplicatedWriteConflictException", 400),
]


@pytest.mark.parametrize(("service", "operation", "code", "status"), DRIFT)
def test_is_transient_never_drifts_from_botocores_standard_mode(
    service: str, operation: str, code: str, status: int
) -> None:
    error = client_error(service, operation, code, status)
    assert botocore_retries(service, operation, error)  # botocore: worth another try
    assert is_transient(error), f"{code} is retried by botocore, permanent for awserrors"


@pytest.mark.parametrize(("operation", "status"), [("PublishBatch", 403), ("SendMessage", 403)])
def test_sqs_and_sns_expired_token_is_transient_as_dynamodbs_is(
    operation: str, status: int
) -> None:
    dynamodb = client_error("dynamodb", "GetItem", "ExpiredTokenException", 400)
    sns_or_sqs = client_error("sns", operation, "ExpiredToken", status)
    assert is_transient(dynamodb)
    assert is_transient(sns_or_sqs), "README: ExpiredToken is transient, never counted"


CREDENTIALS_AWAY: dict[str, Callable[[], Exception]] = {
    "IRSA: STS cannot reach the identity provider": lambda: client_error(
        "sts", "AssumeRoleWithWebIdentity", "IDPCommunicationError", 400
    ),
    "ECS task role / EKS Pod Identity: the credentials endpoint is unreachable": lambda: (
        CredentialRetrievalError(
            provider="container-role",
            error_msg='Could not connect to the endpoint URL: "http://169.254.170.23/v1/credentials"',
        )
    ),
    "an assumed role's session ended, SNS says so": lambda: client_error(
        "sns", "PublishBatch", "ExpiredToken", 403
    ),
}


@pytest.mark.parametrize("cause", list(CREDENTIALS_AWAY))
async def test_credentials_briefly_unavailable_never_send_a_good_command_to_the_dlq(
    cause: str,
) -> None:
    make = CREDENTIALS_AWAY[cause]
    commands, _, failures = flaky_handler(
        *[make() for _ in range(100)], transient_seconds=0.2, max_failures=5
    )
    body = deposit("c-1", "10")

    outcomes = [
        (await commands.handle_group(USER, [delivery(n, body)]))["m-1"] for n in range(1, 6)
    ]

    assert failures.attempts == {}, f"{cause}: counted as a bug"
    assert all(isinstance(o, Retry) for o in outcomes), f"{cause}: {outcomes}"
