"""What the CLI says when AWS refuses, is missing something or cannot be reached: one line
that names what is missing and how to fix it, and an exit status of its own.

A botocore ClientError names its operation but not the resource it was about, so
`annotate(client)` has each request remember its table, queue or topic (from its
parameters) in the request's context, and copies it into an error response: the error
that reaches `explain` then carries it as `response["OrderProcessorTarget"]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from botocore import exceptions as aws

from order_processor.exceptions import OrderProcessorError, ServiceUnavailableException

TARGET = "OrderProcessorTarget"


class ExitStatus(IntEnum):
    """The CLI's exit statuses (the README's table)."""

    OK = 0
    FAILED = 1  # the command's own failure: audit mismatches, a refused domain operation
    USAGE = 2  # a wrong argument or setting, a missing emulator
    UNREACHABLE = 3  # the AWS endpoint does not answer
    NOT_PROVISIONED = 4  # a table, queue or topic does not exist
    ACCESS_DENIED = 5  # no credentials, refused or expired credentials, a missing permission
    THROTTLED = 6  # throttled, or the service is unavailable: try again
    AWS_ERROR = 7  # any other AWS error


ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "AuthorizationError", "AuthorizationErrorException"}
)
REFUSED_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    }
)
EXPIRED_CREDENTIAL_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
MISSING_CODES = frozenset(
    {
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "ResourceNotFoundException",
        "NotFound",
        "NotFoundException",
    }
)
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TransactionInProgressException",
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)
UNAVAILABLE_CODES = frozenset(
    {"InternalServerError", "InternalFailure", "InternalError", "ServiceUnavailable"}
)
CREDENTIAL_ERRORS: tuple[type[Exception], ...] = (
    aws.NoCredentialsError,
    aws.PartialCredentialsError,
    aws.CredentialRetrievalError,
    aws.ProfileNotFound,
    aws.TokenRetrievalError,
    aws.SSOTokenLoadError,
    aws.UnauthorizedSSOTokenError,
)
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (aws.ConnectionError, aws.HTTPClientError)
# Batch operations are authorised by their single operation's action.
IAM_ACTIONS = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
    ("sns", "PublishBatch"): "Publish",
}
PROVISION_HINT = "run `order-processor provision` (or check ORDER_PROCESSOR_PREFIX and AWS_REGION)"


@dataclass(frozen=True)
class Failure:
    status: ExitStatus
    message: str


def explain(exc: Exception) -> Failure:
    """The line and status for an error from AWS (or from a store or publisher that
    wrapped one), or for the project's own error."""
    cause = _aws_cause(exc)
    failure = None if cause is None else _known(cause)
    if failure is not None:
        return failure
    if isinstance(exc, ServiceUnavailableException):
        return Failure(ExitStatus.THROTTLED, f"AWS is busy: {exc.message}: try again in a moment")
    if isinstance(exc, OrderProcessorError):
        return Failure(ExitStatus.FAILED, f"{exc.code}: {exc.message}")
    if isinstance(exc, aws.ClientError):
        return Failure(ExitStatus.AWS_ERROR, f"AWS error: {_call(exc)}: {_code_and_message(exc)}")
    return Failure(ExitStatus.AWS_ERROR, f"AWS error: {_one_line(str(exc))}")


def _known(cause: BaseException) -> Failure | None:
    if isinstance(cause, aws.ClientError):
        return _client_error(cause)
    if isinstance(cause, CREDENTIAL_ERRORS):
        return Failure(
            ExitStatus.ACCESS_DENIED,
            f"no usable AWS credentials ({_one_line(str(cause))}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where a role provides them",
        )
    if isinstance(cause, UNREACHABLE_ERRORS):
        return Failure(
            ExitStatus.UNREACHABLE,
            f"cannot reach the AWS endpoint: {_one_line(str(cause))} "
            "(check AWS_ENDPOINT_URL and the network)",
        )
    return None


def _aws_cause(exc: BaseException) -> BaseException | None:
    """The botocore error itself, or the one a project error was raised from: a store
    turns throttling into ServiceUnavailableException (which keeps AWS's status), and a
    refused condition into a domain error (which `_known` does not claim: status 1)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aws.ClientError | aws.BotoCoreError):
            found: BaseException = seen  # botocore is untyped: keep the type
            return found
        if not isinstance(seen, OrderProcessorError):
            return None
        seen = seen.__cause__
    return None


def _client_error(exc: aws.ClientError) -> Failure | None:
    error = exc.response.get("Error", {})
    codes = {str(error.get("Code", "")), str(error.get("QueryErrorCode", ""))} - {""}
    code = str(error.get("Code", ""))
    target = _target(exc)
    call = _call(exc)
    if codes & ACCESS_DENIED_CODES:
        permission = _permission(target.get("service"), exc.operation_name)
        scope = " on it" if target.get("resource") else ""
        return Failure(
            ExitStatus.ACCESS_DENIED,
            f"access denied: {call} ({code}): allow {permission}{scope} for these credentials "
            "(the README's IAM permissions table)",
        )
    if codes & REFUSED_CREDENTIAL_CODES:
        return Failure(
            ExitStatus.ACCESS_DENIED,
            f"AWS refused the credentials: {call} ({code}): check AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
        )
    if codes & EXPIRED_CREDENTIAL_CODES:
        return Failure(
            ExitStatus.ACCESS_DENIED,
            f"the AWS credentials have expired: {call} ({code}): renew them "
            "(a new session token, `aws sso login`)",
        )
    if codes & MISSING_CODES:
        resource = target.get("resource")
        missing = (
            f"{resource} does not exist ({exc.operation_name})" if resource else f"{call} ({code})"
        )
        return Failure(ExitStatus.NOT_PROVISIONED, f"not provisioned: {missing}: {PROVISION_HINT}")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if codes & THROTTLING_CODES:
        return Failure(ExitStatus.THROTTLED, f"throttled: {call} ({code}): try again in a moment")
    if codes & UNAVAILABLE_CODES or status >= 500:
        return Failure(
            ExitStatus.THROTTLED, f"AWS is unavailable: {call} ({code}): try again in a moment"
        )
    return None


def _permission(service: str | None, operation: str) -> str:
    """The IAM action that authorises `operation` (`sqs:SendMessage` for SendMessageBatch)."""
    if service is None:
        return operation
    return f"{service}:{IAM_ACTIONS.get((service, operation), operation)}"


def _target(exc: aws.ClientError) -> dict[str, str]:
    """What `annotate` recorded of the request: its service and resource."""
    found: Any = exc.response.get(TARGET) or {}
    return dict(found)


def _call(exc: aws.ClientError) -> str:
    resource = _target(exc).get("resource")
    return f"{exc.operation_name} on {resource}" if resource else exc.operation_name


def _code_and_message(exc: aws.ClientError) -> str:
    error = exc.response.get("Error", {})
    message = _one_line(str(error.get("Message", ""))) or "no message"
    return f"{error.get('Code', 'unknown')}: {message}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def annotate(client: Any) -> Any:
    """Have `client`'s error responses name the table, queue or topic of their request."""
    client.meta.events.register("before-parameter-build", _remember_target)
    client.meta.events.register("after-call", _attach_target)
    return client


def _remember_target(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    context[TARGET] = {
        "service": model.service_model.signing_name,
        "resource": describe_resource(params),
    }


def _attach_target(
    http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
) -> None:
    if http_response.status_code >= 300 and TARGET in context:
        parsed[TARGET] = context[TARGET]


def describe_resource(params: dict[str, Any]) -> str | None:
    """`table op-users`, `index X of table op-orders`, `queue op-order-commands.fifo`,
    `topic op-order-events`: what a request's parameters name, if anything."""
    if "QueueUrl" in params:
        return f"queue {str(params['QueueUrl']).rsplit('/', 1)[-1]}"
    if "QueueName" in params:
        return f"queue {params['QueueName']}"
    if "TopicArn" in params:
        return f"topic {str(params['TopicArn']).rsplit(':', 1)[-1]}"
    if "TableName" in params:
        index = params.get("IndexName")
        table = f"table {params['TableName']}"
        return f"index {index} of {table}" if index else table
    tables = sorted(
        {
            str(part["TableName"])
            for item in params.get("TransactItems", [])
            for part in item.values()
            if isinstance(part, dict) and "TableName" in part
        }
        | set(params.get("RequestItems", {}))
    )
    if tables:
        return ("table " if len(tables) == 1 else "tables ") + ", ".join(tables)
    return None
