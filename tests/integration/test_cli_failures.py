"""What the CLI says when AWS refuses, lacks a resource or cannot be reached: one line on
standard error naming what is missing and how to fix it, and the README's exit status.

Missing resources and an unreachable endpoint are real (a fresh emulator, a closed port);
access denied and throttling come from a loopback proxy that answers chosen operations with
AWS's own error response and forwards the rest to the emulator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from order_processor.config import Settings
from order_processor.deployment.emulator import free_port, running_emulator
from tests.integration.fault_proxy import Fault, fault_proxy
from tests.support import cli_env, run_cli

SECRET = {"ORDER_PROCESSOR_JWT_SECRET": "cli-failures-" + "s" * 32}
PROVISION_HINT = "run `order-processor provision` (or check ORDER_PROCESSOR_PREFIX and AWS_REGION)"
IAM_HINT = "for these credentials (the README's IAM permissions table)"


def denied(action: str, arn: str) -> str:
    return (
        f"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: {action} "
        f"on resource: {arn} because no identity-based policy allows the {action} action"
    )


def only_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line on standard error, after checking there is nothing else."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def fresh_endpoint() -> Iterator[str]:
    """An emulator of its own, on which nothing was ever provisioned."""
    with running_emulator() as emulator:
        yield emulator.endpoint


@pytest.mark.parametrize(
    "verb",
    [["status"], ["balance", "alice_01"], ["dlq", "list"], ["provision"], ["audit"]],
)
def test_an_unreachable_endpoint_gives_one_line_and_status_3(verb: list[str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    # The timeout guards against a retry storm; a pass needs the CLI to give up quickly.
    result = run_cli(*verb, env={"AWS_ENDPOINT_URL": closed}, timeout=30)

    assert (result.returncode, result.stdout) == (3, "")
    assert only_line(result) == (
        f"order-processor: cannot reach the AWS endpoint: Could not connect to the endpoint URL: "
        f'"{closed}/" (check AWS_ENDPOINT_URL and the network)'
    )


@pytest.mark.parametrize(
    ("verb", "missing"),
    [
        (["balance", "alice_01"], "table op-users does not exist (Query)"),
        (["orders", "show", "o-1"], "table op-orders does not exist (GetItem)"),
        (["audit"], "table op-users does not exist (Scan)"),
        (
            ["deposit", "alice_01", "10"],
            "queue op-order-commands.fifo does not exist (GetQueueUrl)",
        ),
        (["dlq", "list"], "queue op-order-commands-dlq.fifo does not exist (GetQueueUrl)"),
    ],
)
def test_an_endpoint_never_provisioned_names_what_is_missing_and_exits_4(
    fresh_endpoint: str, verb: list[str], missing: str
) -> None:
    result = run_cli(*verb, env={"AWS_ENDPOINT_URL": fresh_endpoint, **SECRET})

    assert (result.returncode, result.stdout) == (4, "")
    assert only_line(result) == f"order-processor: not provisioned: {missing}: {PROVISION_HINT}"


def test_access_denied_on_a_table_names_the_operation_the_table_and_the_permission(
    provisioned: Settings,
) -> None:
    table = f"{provisioned.prefix}-users"
    fault = Fault(
        "com.amazon.coral.service#AccessDeniedException",
        denied("dynamodb:Query", f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}"),
    )
    assert provisioned.endpoint_url is not None
    with fault_proxy(provisioned.endpoint_url, {"DynamoDB_20120810.Query": fault}) as (url, p):
        result = run_cli(
            "balance", "alice_01", env={**cli_env(provisioned), "AWS_ENDPOINT_URL": url}
        )

    assert p.answered == ["DynamoDB_20120810.Query"]
    assert (result.returncode, result.stdout) == (5, ""), result.stderr
    assert only_line(result) == (
        f"order-processor: access denied: Query on table {table} (AccessDeniedException): "
        f"allow dynamodb:Query on it {IAM_HINT}"
    )


def test_access_denied_on_a_batch_send_names_the_queue_and_the_action_that_allows_it(
    provisioned: Settings,
) -> None:
    queue = f"{provisioned.prefix}-order-commands.fifo"
    fault = Fault(
        "com.amazon.coral.service#AccessDeniedException",
        denied("sqs:sendmessage", f"arn:aws:sqs:us-east-1:123456789012:{queue}"),
        status=403,
        query_error="AccessDenied;Sender",
    )
    assert provisioned.endpoint_url is not None
    with fault_proxy(provisioned.endpoint_url, {"AmazonSQS.SendMessageBatch": fault}) as (
        url,
        proxy,
    ):
        result = run_cli(
            "deposit",
            "alice_01",
            "10",
            env={**cli_env(provisioned), "AWS_ENDPOINT_URL": url, **SECRET},
        )

    assert proxy.answered == ["AmazonSQS.SendMessageBatch"]  # GetQueueUrl went through
    assert (result.returncode, result.stdout) == (5, ""), result.stderr
    assert only_line(result) == (
        f"order-processor: access denied: SendMessageBatch on queue {queue} (AccessDenied): "
        f"allow sqs:SendMessage on it {IAM_HINT}"
    )


@pytest.mark.parametrize(
    ("error_type", "message", "line"),
    [
        (
            "com.amazon.coral.service#UnrecognizedClientException",
            "The security token included in the request is invalid.",
            "AWS refused the credentials: DescribeTable on table {table} "
            "(UnrecognizedClientException): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE",
        ),
        (
            "com.amazon.coral.service#ExpiredTokenException",
            "The security token included in the request is expired",
            "the AWS credentials have expired: DescribeTable on table {table} "
            "(ExpiredTokenException): renew them (a new session token, `aws sso login`)",
        ),
    ],
)
def test_refused_or_expired_credentials_say_so_and_exit_5(
    provisioned: Settings, error_type: str, message: str, line: str
) -> None:
    table = f"{provisioned.prefix}-users"
    fault = Fault(error_type, message)
    assert provisioned.endpoint_url is not None
    with fault_proxy(provisioned.endpoint_url, {"DynamoDB_20120810.DescribeTable": fault}) as (
        url,
        _,
    ):
        result = run_cli("status", env={**cli_env(provisioned), "AWS_ENDPOINT_URL": url})

    assert (result.returncode, result.stdout) == (5, ""), result.stderr
    assert only_line(result) == "order-processor: " + line.format(table=table)


def test_no_credentials_at_all_say_where_to_put_them_and_exit_5() -> None:
    nowhere = "/nonexistent/aws-files"
    result = run_cli(
        "status",
        env={
            "AWS_SHARED_CREDENTIALS_FILE": nowhere,
            "AWS_CONFIG_FILE": nowhere,
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )

    assert (result.returncode, result.stdout) == (5, ""), result.stderr
    assert only_line(result) == (
        "order-processor: no usable AWS credentials (Unable to locate credentials): set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where a role "
        "provides them"
    )


@pytest.mark.parametrize(
    ("verb", "target", "fault", "line"),
    [
        (
            ["audit"],
            "DynamoDB_20120810.Scan",
            Fault(
                "com.amazon.coral.availability#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            ),
            "throttled: Scan on table {prefix}-users (ThrottlingException): try again in a moment",
        ),
        (
            ["balance", "alice_01"],
            "DynamoDB_20120810.Query",
            Fault(
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            ),
            "throttled: Query on table {prefix}-users (ProvisionedThroughputExceededException):"
            " try again in a moment",
        ),
        (
            ["deposit", "alice_01", "10"],
            "AmazonSQS.SendMessageBatch",
            Fault(
                "com.amazonaws.sqs#RequestThrottled",
                "Request is throttled.",
                query_error="RequestThrottled;Sender",
            ),
            "throttled: SendMessageBatch on queue {prefix}-order-commands.fifo (RequestThrottled): "
            "try again in a moment",
        ),
    ],
)
def test_throttling_says_try_again_and_exits_6(
    provisioned: Settings, verb: list[str], target: str, fault: Fault, line: str
) -> None:
    assert provisioned.endpoint_url is not None
    with fault_proxy(provisioned.endpoint_url, {target: fault}) as (url, proxy):
        env = {**cli_env(provisioned), "AWS_ENDPOINT_URL": url, "AWS_MAX_ATTEMPTS": "2", **SECRET}
        result = run_cli(*verb, env=env, timeout=30)

    assert len(proxy.answered) >= 2  # the SDK retried throttling before giving up
    assert set(proxy.answered) == {target}
    assert (result.returncode, result.stdout) == (6, "")
    assert only_line(result) == "order-processor: " + line.format(prefix=provisioned.prefix)


def test_any_other_aws_error_gives_its_code_and_message_and_exits_7(
    provisioned: Settings,
) -> None:
    fault = Fault(
        "com.amazon.coral.validate#ValidationException",
        "One or more parameter values were invalid:\nAn AttributeValue may not contain an "
        "empty string",
    )
    assert provisioned.endpoint_url is not None
    with fault_proxy(provisioned.endpoint_url, {"DynamoDB_20120810.Query": fault}) as (url, _):
        result = run_cli(
            "balance", "alice_01", env={**cli_env(provisioned), "AWS_ENDPOINT_URL": url}
        )

    assert (result.returncode, result.stdout) == (7, "")
    assert only_line(result) == (
        f"order-processor: AWS error: Query on table {provisioned.prefix}-users: "
        "ValidationException: One or more parameter values were invalid: An AttributeValue "
        "may not contain an empty string"
    )
