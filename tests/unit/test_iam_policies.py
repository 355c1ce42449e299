"""deploy/iam/*.json say, statement for statement, what the README's IAM table says.

The table is prose for people; the parser below reads it the way a person would:
a cell is clauses separated by ";", each "ACTIONS on `RESOURCES`" (no "on": every
resource of that service named with the prefix); "DeleteMessage(Batch)" or "Publish (which
covers PublishBatch)" name a batch call that IAM authorises with the single action;
"TransactWriteItems (Put, Update, ConditionCheck)" names the item actions IAM checks for a
transaction; any other parenthesis is a remark; "the same on `QUEUE`" repeats the row above's
cell in that column for another queue (and its DLQ).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from order_processor.resources import Resources

ROOT = Path(__file__).resolve().parents[2]
IAM_DIR = ROOT / "deploy" / "iam"

# The placeholders the policy files are written for (the README says how to replace them).
REGION = "us-east-1"
ACCOUNT = "111122223333"
PREFIX = "op"

SERVICES = ("sqs", "dynamodb", "sns")
# Actions IAM does not scope to a resource.
UNSCOPED = {"sns:ListTopics"}
TRANSACTION_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "ConditionCheck": "ConditionCheckItem",
}

Grant = tuple[str, str]  # (action, resource ARN)


def readme_table() -> dict[str, list[str]]:
    """Program slug -> its SQS, DynamoDB and SNS cells."""
    text = (ROOT / "README.md").read_text()
    heading = text.index("**IAM permissions** each program needs")
    lines = text[heading:].splitlines()[1:]
    rows = [line for line in lines[: _table_end(lines)] if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header == ["program", "SQS", "DynamoDB", "SNS"], header
    table: dict[str, list[str]] = {}
    for row in rows[2:]:
        program, *cells = (cell.strip() for cell in row.strip().strip("|").split("|"))
        table[_slug(program)] = cells
    return table


def _table_end(lines: list[str]) -> int:
    started = False
    for number, line in enumerate(lines):
        if line.startswith("|"):
            started = True
        elif started:
            return number
    return len(lines)


def _slug(program: str) -> str:
    return re.sub(r"[^a-z]+", "-", program.replace("`", "").lower()).strip("-")


def readme_grants() -> dict[str, set[Grant]]:
    grants: dict[str, set[Grant]] = {}
    previous: list[str] = ["", "", ""]
    for program, cells in readme_table().items():
        grants[program] = set()
        for column, (service, cell) in enumerate(zip(SERVICES, cells, strict=True)):
            for actions, targets in _clauses(cell, previous[column]):
                for action in actions:
                    name = f"{service}:{action}"
                    for arn in _arns(service, name, targets):
                        grants[program].add((name, arn))
        previous = cells
    return grants


def _clauses(cell: str, cell_above: str) -> Iterator[tuple[list[str], list[str]]]:
    if cell == "none":
        return
    for clause in cell.split(";"):
        clause = _expand_transactions(clause.strip())
        clause = re.sub(r"\s*\([^)]*\)", "", clause)  # batch variants and remarks
        words, _, where = clause.partition(" on ")
        if words == "the same":
            yield from _clauses(_same_on(cell_above, where), "")
            continue
        targets = re.findall(r"`([^`]+)`", where)
        if where == "the DLQ":
            targets = ["order-commands-dlq"]
        yield _actions(words), targets


def _same_on(cell_above: str, where: str) -> str:
    """ "the same on `price-updates`": the cell above, its queue (and that queue's DLQ)
    replaced by this one (and its DLQ)."""
    [queue] = re.findall(r"`([^`]+)`", where)
    base = re.findall(r"`([^`]+)`", cell_above)[0]
    return cell_above.replace(f"`{base}-dlq`", f"`{queue}-dlq`").replace(f"`{base}`", f"`{queue}`")


def _expand_transactions(clause: str) -> str:
    def items(match: re.Match[str]) -> str:
        return ", ".join(TRANSACTION_ITEMS[kind.strip()] for kind in match[1].split(","))

    return re.sub(r"TransactWriteItems \(([^)]*)\)", items, clause)


def _actions(words: str) -> list[str]:
    actions: list[str] = []
    for token in re.split(r",\s*|\s+and\s+", words.strip()):
        shared = re.fullmatch(r"([A-Z][a-z]+)/([A-Z][a-z]+)(\w+)", token)
        if shared:  # Get/SetQueueAttributes
            actions += [shared[1] + shared[3], shared[2] + shared[3]]
        else:
            assert re.fullmatch(r"[A-Z]\w+", token), f"not an action: {token!r}"
            actions.append(token)
    return actions


def _arns(service: str, action: str, targets: list[str]) -> list[str]:
    if action in UNSCOPED:
        return ["*"]
    if not targets:
        return [_arn(service, f"{PREFIX}-*")]
    return [_arn(service, _resource_name(service, target)) for target in targets]


def _resource_name(service: str, target: str) -> str:
    resources = Resources(prefix=PREFIX)
    if service == "sqs":
        names = {queue.name.removesuffix(".fifo"): queue.name for queue in resources.queues}
        return names[f"{PREFIX}-{target}"]
    if service == "dynamodb":
        table, _, index = target.partition("/")
        assert f"{PREFIX}-{table}" in {spec.name for spec in resources.tables}, target
        return f"{PREFIX}-{table}" + (f"/{index}" if index else "")
    assert f"{PREFIX}-{target}" in resources.topics, target
    return f"{PREFIX}-{target}"


def _arn(service: str, name: str) -> str:
    if service == "dynamodb":
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"


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
    return readme_grants()


def test_there_is_one_policy_file_per_row_of_the_readme_table(
    from_readme: dict[str, set[Grant]],
) -> None:
    files = {path.stem for path in IAM_DIR.glob("*.json")}

    assert files == set(from_readme)


@pytest.mark.parametrize(
    "program",
    ["order-worker", "limit-matcher", "expiry-sweeper", "producers", "provision", "audit-status"],
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
