"""deploy/aws/order-processor.json: what `order-processor template` prints, clean under
cfn-lint, roles that grant exactly the README's IAM table, and what the Kubernetes
manifests expect of it. (The very resources `provision` creates are compared with it
against the emulator: tests/integration/test_template_provision.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import ManualArgs, lint

from order_processor.deployment.iam import Arns, Grant, readme_grants
from order_processor.deployment.resources import Resources
from order_processor.deployment.template import build_template, render
from order_processor.deployment.template.roles import OPERATORS, PROGRAMS
from tests.cloudformation import CACHE_NETWORK, Stack
from tests.support import CLI

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "aws" / "order-processor.json"
KUBERNETES = ROOT / "deploy" / "kubernetes"
ACCOUNT = "123456789012"
OIDC = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# cfn-lint rules the template is allowed to break, each with the reason. None so far: the
# informational rules (I...) are included and clean too.
IGNORED_RULES: dict[str, str] = {}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TEMPLATE.read_text())
    return loaded


def stack(template: dict[str, Any], **parameters: str) -> Stack:
    return Stack(template, {"OidcProvider": OIDC, **CACHE_NETWORK, **parameters}, account=ACCOUNT)


def test_the_checked_in_template_is_what_the_generator_prints() -> None:
    printed = subprocess.run([CLI, "template"], capture_output=True, text=True, check=True)

    assert printed.stdout == render(build_template())
    assert TEMPLATE.read_text() == printed.stdout, (
        "deploy/aws/order-processor.json is stale: run `make template`"
    )


def test_cfn_lint_finds_nothing_but_the_rules_ignored_with_a_reason() -> None:
    matches = lint(
        TEMPLATE.read_text(),
        config=ManualArgs(include_checks=["I"], regions=["us-east-1", "eu-west-1"]),
    )

    found = [f"{m.rule.id} {m.message} ({m.path})" for m in matches]
    assert [f for f in found if f.split()[0] not in IGNORED_RULES] == []


def test_cfn_lint_would_notice_a_broken_template(template: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(template))
    del broken["Resources"]["OrderCommandsDlqQueue"]  # the commands queue's redrive target

    matches = lint(json.dumps(broken), config=ManualArgs(regions=["us-east-1"]))

    assert any(m.rule.id.startswith("E") for m in matches)


# Roles


def readme_rows() -> dict[str, set[Grant]]:
    arns = Arns(Resources("op"), "us-east-1", ACCOUNT)
    return readme_grants((ROOT / "README.md").read_text(), arns)


def role_grants(role: dict[str, Any]) -> set[Grant]:
    grants: set[Grant] = set()
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in _listed(statement["Action"]):
                grants |= {(action, resource) for resource in _listed(statement["Resource"])}
    return grants


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def roles_by_row(resolved: Stack) -> dict[str, dict[str, Any]]:
    roles = resolved.resources("AWS::IAM::Role").values()
    return {role["Policies"][0]["PolicyName"]: role for role in roles}


def test_each_role_grants_exactly_its_row_of_the_readme_table(template: dict[str, Any]) -> None:
    rows = readme_rows()
    roles = roles_by_row(stack(template))

    # Every row but provision: CloudFormation creates the resources instead.
    assert sorted(roles) == sorted(set(rows) - {"provision"})
    assert sorted(roles) == sorted([*PROGRAMS, *OPERATORS])
    for row, role in roles.items():
        assert role["RoleName"] == f"op-{row}"
        granted = role_grants(role)
        assert sorted(granted - rows[row]) == [], f"{row}: granted, not in the README"
        assert sorted(rows[row] - granted) == [], f"{row}: in the README, not granted"


def test_with_a_customer_managed_key_the_programs_may_use_it_through_their_services_only(
    template: dict[str, Any],
) -> None:
    rows = readme_rows()
    roles = roles_by_row(stack(template, KmsKeyArn=KEY))
    table_key = {
        (action, KEY)
        for action in (
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GenerateDataKey*",
            "kms:ReEncrypt*",
        )
    }

    for row, role in roles.items():
        extra = role_grants(role) - rows[row]
        sends_or_receives = any(
            action in {"sqs:SendMessage", "sqs:ReceiveMessage", "sns:Publish"}
            for action, _ in rows[row]
        )
        uses_tables = any(action.startswith("dynamodb:") for action, _ in rows[row])
        expected = (
            {("kms:Decrypt", KEY), ("kms:GenerateDataKey", KEY)} if sends_or_receives else set()
        ) | (table_key if uses_tables else set())
        assert extra == expected, row
    statements = roles["order-worker"]["Policies"][0]["PolicyDocument"]["Statement"]
    [kms] = [s for s in statements if s["Sid"] == "CustomerManagedKey"]
    assert kms["Condition"]["StringEquals"]["kms:ViaService"] == [
        "sqs.us-east-1.amazonaws.com",
        "sns.us-east-1.amazonaws.com",
    ]
    [tables] = [s for s in statements if s["Sid"] == "CustomerManagedKeyTables"]
    assert tables["Condition"]["StringEquals"]["kms:ViaService"] == (
        "dynamodb.us-east-1.amazonaws.com"
    )
    dashboard = roles["analytics-dashboard"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert any(s["Sid"] == "CustomerManagedKeyTables" for s in dashboard)


def test_each_program_role_trusts_only_its_own_service_account_through_the_oidc_provider(
    template: dict[str, Any],
) -> None:
    roles = roles_by_row(stack(template, Namespace="trading"))

    for row, account in PROGRAMS.items():
        trust = json.loads(roles[row]["AssumeRolePolicyDocument"])
        [statement] = trust["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert statement["Principal"] == {
            "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"
        }
        assert statement["Condition"] == {
            "StringEquals": {
                f"{OIDC}:aud": "sts.amazonaws.com",
                f"{OIDC}:sub": f"system:serviceaccount:trading:{account}",
            }
        }
    for row in OPERATORS:
        [statement] = roles[row]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


def test_the_gateway_reads_the_tables_and_sends_commands_but_writes_nothing(
    template: dict[str, Any],
) -> None:
    granted = role_grants(roles_by_row(stack(template))["gateway"])
    by_action = {action: sorted(r for a, r in granted if a == action) for action, _ in granted}
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/op-"

    assert sorted(by_action) == [
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:SendMessage",
    ]
    assert by_action["sqs:SendMessage"] == [
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:op-order-commands.fifo"
    ]
    assert by_action["dynamodb:GetItem"] == [
        table + "inventory",
        table + "orders",
        table + "users",
    ]
    # Another user's orders are reached only through the index, by username.
    assert by_action["dynamodb:Query"] == [
        table + "inventory",
        table + "orders/index/UserOrdersIndex",
        table + "users",
    ]


def test_the_cache_worker_may_only_take_events_from_its_own_queue(
    template: dict[str, Any],
) -> None:
    granted = role_grants(roles_by_row(stack(template))["cache-worker"])

    assert {resource for _, resource in granted} == {
        f"arn:aws:sqs:us-east-1:{ACCOUNT}:op-order-cache"
    }
    assert sorted(action for action, _ in granted) == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    ]


# The read model's cache


def test_the_cache_is_serverless_redis_in_the_given_subnets_and_security_groups(
    template: dict[str, Any],
) -> None:
    [cache] = stack(template, Prefix="live").resources("AWS::ElastiCache::ServerlessCache").values()

    assert cache["ServerlessCacheName"] == "live-cache"
    assert (cache["Engine"], cache["MajorEngineVersion"]) == ("redis", "7")
    assert cache["SubnetIds"] == CACHE_NETWORK["CacheSubnetIds"].split(",")
    assert cache["SecurityGroupIds"] == [CACHE_NETWORK["CacheSecurityGroupIds"]]
    assert cache["CacheUsageLimits"] == {
        "DataStorage": {"Maximum": "5", "Unit": "GB"},
        "ECPUPerSecond": {"Maximum": "100000"},
    }
    assert "KmsKeyId" not in cache
    # Copies of DynamoDB's records: nothing to back up, nothing to keep after the stack.
    assert cache["SnapshotRetentionLimit"] == 0
    assert template["Resources"]["OrderCache"]["DeletionPolicy"] == "Delete"


def test_the_cache_can_run_valkey_and_use_the_customer_managed_key(
    template: dict[str, Any],
) -> None:
    resolved = stack(template, CacheEngine="valkey", KmsKeyArn=KEY)
    [cache] = resolved.resources("AWS::ElastiCache::ServerlessCache").values()

    assert (cache["Engine"], cache["MajorEngineVersion"]) == ("valkey", "8")
    assert cache["KmsKeyId"] == KEY


def test_the_stack_gives_the_programs_a_tls_redis_url(template: dict[str, Any]) -> None:
    url = stack(template).output("OrderCacheRedisUrl")

    assert url == "rediss://op-cache-a1b2c3.serverless.use1.cache.amazonaws.com:6379"


def test_the_cache_queue_follows_the_events_topic_with_raw_delivery(
    template: dict[str, Any],
) -> None:
    resolved = stack(template)
    subscriptions = resolved.resources("AWS::SNS::Subscription")
    queues = resolved.resources("AWS::SQS::Queue")
    [policy] = [
        p["PolicyDocument"]
        for p in resolved.resources("AWS::SQS::QueuePolicy").values()
        if p["Queues"] == [resolved.output("OrderCacheQueueUrl")]
    ]

    assert subscriptions["OrderCacheSubscription"] == {
        "TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:op-order-events",
        "Protocol": "sqs",
        "Endpoint": f"arn:aws:sqs:us-east-1:{ACCOUNT}:op-order-cache",
        "RawMessageDelivery": True,
    }
    assert queues["OrderCacheQueue"]["RedrivePolicy"] == {
        "deadLetterTargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:op-order-cache-dlq",
        "maxReceiveCount": 50,
    }
    assert "FifoQueue" not in queues["OrderCacheQueue"]
    [statement] = policy["Statement"]
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:op-order-events"}
    }


# What deploy/kubernetes takes from the stack's outputs


def manifests() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def test_the_kubernetes_manifests_name_the_stacks_roles_queue_and_prefix(
    template: dict[str, Any],
) -> None:
    # The manifests' placeholder account.
    resolved = Stack(template, {"OidcProvider": OIDC, **CACHE_NETWORK})
    documents = manifests()
    accounts = {
        d["metadata"]["name"]: d["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        for d in documents
        if d["kind"] == "ServiceAccount"
    }
    [scaled] = [d for d in documents if d["kind"] == "ScaledObject"]
    [settings] = [d for d in documents if d["kind"] == "ConfigMap"]
    roles = {
        row: resolved.output("".join(p.capitalize() for p in row.split("-")) + "RoleArn")
        for row in PROGRAMS
    }

    # Every program with a Deployment; the producers run elsewhere.
    assert accounts == {PROGRAMS[row]: arn for row, arn in roles.items() if row != "producers"}
    assert scaled["spec"]["triggers"][0]["metadata"]["queueURL"] == resolved.output(
        "OrderCommandsQueueUrl"
    )
    assert settings["data"]["ORDER_PROCESSOR_PREFIX"] == resolved.parameters["Prefix"]
    assert settings["data"]["ORDER_PROCESSOR_QUEUE_KIND"] == "fifo"


# Capacity, encryption, alarms


def test_provisioned_capacity_applies_to_every_table_and_index(template: dict[str, Any]) -> None:
    resolved = stack(template, BillingMode="PROVISIONED", ReadCapacityUnits="7")

    for table in resolved.resources("AWS::DynamoDB::Table").values():
        capacities = [table, *table.get("GlobalSecondaryIndexes", [])]
        assert [c["ProvisionedThroughput"] for c in capacities] == [
            {"ReadCapacityUnits": "7", "WriteCapacityUnits": "5"}
        ] * len(capacities)


def test_a_customer_managed_key_encrypts_every_table_queue_and_topic(
    template: dict[str, Any],
) -> None:
    with_key, without = stack(template, KmsKeyArn=KEY), stack(template)

    for table in with_key.resources("AWS::DynamoDB::Table").values():
        assert table["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": KEY,
        }
    assert {q.get("KmsMasterKeyId") for q in with_key.resources("AWS::SQS::Queue").values()} == {
        KEY
    }
    assert {
        q.get("SqsManagedSseEnabled") for q in without.resources("AWS::SQS::Queue").values()
    } == {True}
    [topic] = with_key.resources("AWS::SNS::Topic").values()
    assert topic["KmsMasterKeyId"] == KEY


def alarms_on(resolved: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    """(metric, dimension value) -> alarm; for metric math, each metric of the sum."""
    found = {}
    for alarm in resolved.resources("AWS::CloudWatch::Alarm").values():
        metrics = [q["MetricStat"]["Metric"] for q in alarm.get("Metrics", []) if "MetricStat" in q]
        for metric in metrics or [alarm]:
            found[(metric["MetricName"], metric["Dimensions"][0]["Value"])] = alarm
    return found


def test_alarms_cover_dead_letters_waiting_commands_and_events_throttles_errors_deliveries(
    template: dict[str, Any],
) -> None:
    resolved = stack(template, AlarmTopicArn="arn:aws:sns:us-east-1:123456789012:pager")
    alarms = alarms_on(resolved)
    resources = Resources("op")

    for queue in resources.queues:
        if queue.dead_letter:
            alarm = alarms[("ApproximateNumberOfMessagesVisible", queue.dead_letter.name)]
            assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    oldest = alarms[("ApproximateAgeOfOldestMessage", resources.commands_queue.name)]
    assert oldest["Threshold"] == "300"
    lagging = alarms[("ApproximateAgeOfOldestMessage", resources.order_cache_queue.name)]
    assert lagging["Threshold"] == "60"
    assert ("ApproximateNumberOfMessagesVisible", "op-order-cache-dlq") in alarms
    for table in resources.tables:
        assert ("ReadThrottleEvents", table.name) in alarms
        assert ("WriteThrottleEvents", table.name) in alarms
        assert alarms[("SystemErrors", table.name)]["Threshold"] == 0
    assert ("NumberOfNotificationsFailed", resources.events_topic) in alarms
    assert all(
        a["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:pager"] for a in alarms.values()
    )


def test_the_dashboard_shows_the_numbers_of_status_for_every_queue(
    template: dict[str, Any],
) -> None:
    [dashboard] = stack(template).resources("AWS::CloudWatch::Dashboard").values()
    widgets = json.loads(dashboard["DashboardBody"])["widgets"]
    shown = {
        (metric[1], metric[3])
        for widget in widgets
        for metric in widget["properties"].get("metrics", [])
    }
    resources = Resources("op")

    dead_letters = {q.dead_letter.name for q in resources.queues if q.dead_letter}
    for queue in resources.queues:
        if queue.name in dead_letters:
            continue
        assert ("ApproximateNumberOfMessagesVisible", queue.name) in shown
        assert ("ApproximateNumberOfMessagesNotVisible", queue.name) in shown
    for name in dead_letters:
        assert ("ApproximateNumberOfMessagesVisible", name) in shown
    [alarm_widget] = [w for w in widgets if w["type"] == "alarm"]
    alarm_names = [
        alarm["AlarmName"] for alarm in stack(template).resources("AWS::CloudWatch::Alarm").values()
    ]
    assert sorted(a.rsplit(":", 1)[-1] for a in alarm_widget["properties"]["alarms"]) == sorted(
        alarm_names
    )
