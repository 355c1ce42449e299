"""Which AWS errors are worth another try: what botocore's standard retry mode retries
(its transient and throttling checkers, so the two lists never drift apart), and the few
that its retries leave to the caller.

A call only raises one of these once botocore has spent its own attempts on it, so a
caller that sees one hands the work back (or retries it later), never reports it as a
refusal and never dead-letters it.
"""

from __future__ import annotations

from types import SimpleNamespace

from botocore.exceptions import BotoCoreError, ClientError, CredentialRetrievalError
from botocore.retries.standard import (
    RetryContext,
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)

# Not retried by botocore, transient all the same: a single-item write that met a
# transaction in flight on its item (DynamoDB); SNS's throttling (429, which botocore's
# lists miss); an assumed role's session that ended before its credentials were renewed
# (the next attempt signs with renewed ones).
UNRETRIED_TRANSIENT_CODES = frozenset(
    {
        "TransactionConflictException",
        "Throttled",
        "KMSThrottling",
        "ExpiredTokenException",  # DynamoDB's spelling
        "ExpiredToken",  # SQS's and SNS's
        # What botocore's standard mode retries by other checks than the two used below:
        # STS unable to reach the identity provider (special.RetryIDPCommunicationError),
        # errors the service model marks retryable (ModeledRetryableChecker).
        "IDPCommunicationError",
        "ReplicatedWriteConflictException",
    }
)
# The service's own faults, whatever status an emulator or a proxy sends them with (AWS
# sends them as 500 and 503, which botocore's checker already knows).
SERVER_FAULT_CODES = frozenset(
    {"InternalServerError", "InternalError", "InternalFailure", "ServiceUnavailable"}
)
TOO_MANY_REQUESTS = 429
# Cancellation reasons of a TransactWriteItems that a later attempt can overcome.
CONFLICT = "TransactionConflict"  # another transaction or write on the item was in flight
TRANSIENT_CANCELLATIONS = frozenset({CONFLICT, "ThrottlingError", "ProvisionedThroughputExceeded"})

_CHECKERS = (TransientRetryableChecker(), ThrottledRetryableChecker())


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-item reasons of a cancelled TransactWriteItems ("None" where that item passed)."""
    reasons = exc.response.get("CancellationReasons", [])
    return [str(reason.get("Code", "None")) for reason in reasons]


def is_transient(exc: BaseException) -> bool:
    """True for throttling, 5xx, connection failures and timeouts, transaction conflicts:
    whatever another attempt a moment later may overcome."""
    if isinstance(exc, ClientError):
        return _is_transient_answer(exc)
    if isinstance(exc, CredentialRetrievalError):  # STS or the IdP away: renewed later
        return True
    if isinstance(exc, BotoCoreError):
        context = RetryContext(attempt_number=1, caught_exception=exc)
        return any(checker.is_retryable(context) for checker in _CHECKERS)
    return False


def _is_transient_answer(exc: ClientError) -> bool:
    if error_code(exc) in UNRETRIED_TRANSIENT_CODES | SERVER_FAULT_CODES:
        return True
    if TRANSIENT_CANCELLATIONS.intersection(cancellation_codes(exc)):
        return True
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status == TOO_MANY_REQUESTS:
        return True
    context = RetryContext(
        attempt_number=1,
        parsed_response=exc.response,
        http_response=SimpleNamespace(status_code=status) if status else None,
    )
    return any(checker.is_retryable(context) for checker in _CHECKERS)
