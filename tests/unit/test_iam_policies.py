"""deploy/iam/*.json say, statement for statement, what the README's IAM table says (read
by order_processor.deployment.iam, which the CloudFormation template's roles use too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from order_processor.deployment import iam
from order_processor.deployment.iam import Arns, Grant, readme_grants
from order_processor.deployment.resources import Resources

ROOT = Path(__file__).resolve().parents[2]
IAM_DIR = ROOT / "deploy" / "iam"

# The placeholders the policy files are written for (the README says how to replace them).
REGION = "us-east-1"
ACCOUNT = "111122223333"
PREFIX = "op"


def policy_grants(document: dict[str, Any]) -> set[Grant]:
    grants: set[Grant] = set()
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        for action in actions:
            for resource in _as_list(statement["Resource"]):
                grants.add((action, resource))
    return grants


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.fixture(scope="module")
def from_readme() -> dict[str, set[Grant]]:
    return readme_grants((ROOT / "README.md").read_text(), Arns(Resources(PREFIX), REGION, ACCOUNT))


def test_there_is_one_policy_file_per_row_of_the_readme_table(
    from_readme: dict[str, set[Grant]],
) -> None:
    files = {path.stem for path in IAM_DIR.glob("*.json")}

    assert files == set(from_readme)


@pytest.mark.parametrize(
    "program",
    [
        "order-worker",
        "limit-matcher",
        "expiry-sweeper",
        "analytics-worker",
        "gateway",
        "cache-worker",
        "producers",
        "provision",
        "audit-status",
        "analytics-dashboard",
        "dead-letters-dlq",
    ],
)
def test_each_policy_grants_exactly_what_the_readme_table_lists(
    program: str, from_readme: dict[str, set[Grant]]
) -> None:
    document = json.loads((IAM_DIR / f"{program}.json").read_text())

    assert document["Version"] == "2012-10-17"
    granted = policy_grants(document)
    assert sorted(granted - from_readme[program]) == [], "granted, not in the README"
    assert sorted(from_readme[program] - granted) == [], "in the README, not granted"


def test_the_order_worker_policy_reads_the_fifo_commands_queue_of_resources_py(
    from_readme: dict[str, set[Grant]],
) -> None:
    queue = Resources(prefix=PREFIX).commands_queue.name

    assert queue == "op-order-commands.fifo"
    assert ("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}") in from_readme[
        "order-worker"
    ]
    # A transaction is authorised item action by item action; there is no IAM action for it.
    assert not any(
        action == "dynamodb:TransactWriteItems" for action, _ in from_readme["order-worker"]
    )


def test_the_parser_notices_a_grant_the_readme_does_not_list(
    from_readme: dict[str, set[Grant]],
) -> None:
    document = json.loads((IAM_DIR / "expiry-sweeper.json").read_text())
    document["Statement"].append(
        {"Effect": "Allow", "Action": "sqs:PurgeQueue", "Resource": "arn:aws:sqs:*:*:*"}
    )

    assert policy_grants(document) != from_readme["expiry-sweeper"]


def test_installed_without_a_checkout_the_table_comes_from_the_packages_readme(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(iam, "CHECKOUT_README", ROOT / "no-such-README.md")

    text = iam.readme_text()

    # The README the package was installed with (its long description): not compared with
    # this checkout's, which may have changed since `pip install -e .`.
    grants = readme_grants(text, Arns(Resources(PREFIX), REGION, ACCOUNT))
    assert ("sqs:ReceiveMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:op-order-commands.fifo") in (
        grants["order-worker"]
    )
