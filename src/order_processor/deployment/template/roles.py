"""One IAM role per program, granting exactly its row of the README's IAM table
(order_processor.deployment.iam) on the stack's own resources. The programs' roles trust one
Kubernetes service account each through the cluster's OIDC provider (IRSA); the operators'
roles trust the account, whose principals still need `sts:AssumeRole` on them."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from order_processor.deployment.iam import Grant, readme_grants
from order_processor.deployment.template.names import NO_VALUE, ref, sub, template_arns

# README row -> the Kubernetes service account that runs it (deploy/kubernetes).
PROGRAMS = {
    "order-worker": "order-worker",
    "limit-matcher": "limit-matcher",
    "expiry-sweeper": "expiry-sweeper",
    "analytics-worker": "analytics-worker",
    "gateway": "gateway",
    "cache-worker": "cache-worker",
    "producers": "producers",
}
# Rows for people at a terminal: `audit`/`status`, `analytics`/`dashboard`, `dlq`.
OPERATORS = ("audit-status", "analytics-dashboard", "dead-letters-dlq")
# Not a role of the stack: CloudFormation itself creates what `provision` would.
LEFT_OUT = ("provision",)
# The calls that read or write a queue's or topic's messages: with a customer-managed
# key (KmsKeyArn) they also need the key, through that service only.
KMS_USERS = {"sqs:SendMessage", "sqs:ReceiveMessage", "sns:Publish"}
# A table encrypted with a customer-managed key needs the key too, for every caller of
# DynamoDB on it (through DynamoDB only): the default key policy leaves that to IAM.
DYNAMODB_KEY_ACTIONS = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
]


def role_logical_id(row: str) -> str:
    return "".join(part.capitalize() for part in row.split("-")) + "Role"


def role_resources(readme: str) -> dict[str, Any]:
    grants = readme_grants(readme, template_arns())
    roles: dict[str, Any] = {}
    for row, account in PROGRAMS.items():
        roles[role_logical_id(row)] = _role(row, grants[row], _irsa_trust(account))
    for row in OPERATORS:
        roles[role_logical_id(row)] = _role(row, grants[row], _account_trust())
    return roles


def _role(row: str, grants: set[Grant], trust: Any) -> dict[str, Any]:
    statements: list[Any] = _statements(grants)
    if any(action in KMS_USERS for action, _ in grants):
        statements.append({"Fn::If": ["HasKmsKey", _kms_statement(), NO_VALUE]})
    if any(action.startswith("dynamodb:") for action, _ in grants):
        statements.append({"Fn::If": ["HasKmsKey", _dynamodb_key_statement(), NO_VALUE]})
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": sub(f"${{Prefix}}-{row}"),
            "Description": f"order-processor {row}: the README's IAM table, row {row}",
            "AssumeRolePolicyDocument": trust,
            "Policies": [
                {
                    "PolicyName": row,
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ],
        },
    }


def _statements(grants: set[Grant]) -> list[dict[str, Any]]:
    """One statement per set of resources that share their actions, in a stable order."""
    actions_by_resource: dict[str, set[str]] = defaultdict(set)
    for action, resource in grants:
        actions_by_resource[resource].add(action)
    resources_by_actions: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for resource, granted in actions_by_resource.items():
        resources_by_actions[tuple(sorted(granted))].append(resource)
    groups = sorted(resources_by_actions.items(), key=lambda group: sorted(group[1]))
    return [
        {
            "Sid": f"Readme{number}",
            "Effect": "Allow",
            "Action": list(actions),
            "Resource": [sub(resource) for resource in sorted(resources)],
        }
        for number, (actions, resources) in enumerate(groups, start=1)
    ]


def _kms_statement() -> dict[str, Any]:
    return {
        "Sid": "CustomerManagedKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": ref("KmsKeyArn"),
        "Condition": {
            "StringEquals": {
                "kms:ViaService": [
                    sub("sqs.${AWS::Region}.amazonaws.com"),
                    sub("sns.${AWS::Region}.amazonaws.com"),
                ]
            }
        },
    }


def _dynamodb_key_statement() -> dict[str, Any]:
    return {
        "Sid": "CustomerManagedKeyTables",
        "Effect": "Allow",
        "Action": DYNAMODB_KEY_ACTIONS,
        "Resource": ref("KmsKeyArn"),
        "Condition": {
            "StringEquals": {"kms:ViaService": sub("dynamodb.${AWS::Region}.amazonaws.com")}
        },
    }


def _irsa_trust(service_account: str) -> dict[str, str]:
    """IRSA: the cluster's OIDC provider vouches for one service account. The condition's
    keys name the provider, and CloudFormation substitutes no keys: the whole document is
    one `Fn::Sub` string."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "Federated": "arn:${AWS::Partition}:iam::${AWS::AccountId}"
                    ":oidc-provider/${OidcProvider}"
                },
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "${OidcProvider}:aud": "sts.amazonaws.com",
                        "${OidcProvider}:sub": "system:serviceaccount:${Namespace}:"
                        + service_account,
                    }
                },
            }
        ],
    }
    return {"Fn::Sub": json.dumps(document, sort_keys=True)}


def _account_trust() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                "Action": "sts:AssumeRole",
            }
        ],
    }
