"""The README's IAM table ("**IAM permissions** each program needs") read as grants: the one
source of truth for deploy/iam/*.json (checked by tests/unit/test_iam_policies.py) and for
the roles of the CloudFormation template (`order-processor template`).

The table is prose for people; the parser reads it the way a person would: a cell is
clauses separated by ";", each "ACTIONS on `RESOURCES`" (no "on": every resource of that
service named with the prefix); "DeleteMessage(Batch)" or "Publish (which covers
PublishBatch)" name a batch call that IAM authorises with the single action;
"TransactWriteItems (Put, Update, ConditionCheck)" names the item actions IAM checks for a
transaction; any other parenthesis is a remark; "the same on `QUEUE`" repeats the row
above's cell in that column for another queue (and its DLQ).

ARNs are built from an `Arns` (partition, region, account and the `Resources` of one
prefix): concrete values for a policy file, or CloudFormation's `${AWS::Region}`-style
placeholders for a template's `Fn::Sub`. Standard library only, like resources.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from order_processor.deployment.resources import Resources

SERVICES = ("sqs", "dynamodb", "sns")
# Actions IAM does not scope to a resource.
UNSCOPED = {"sns:ListTopics"}
TRANSACTION_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "ConditionCheck": "ConditionCheckItem",
}
TABLE_HEADING = "**IAM permissions** each program needs"
# A checkout's README, when there is one (src/order_processor/deployment/iam.py -> the repository).
CHECKOUT_README = Path(__file__).resolve().parents[3] / "README.md"

Grant = tuple[str, str]  # (action, resource ARN)


@dataclass(frozen=True)
class Arns:
    """Where the grants' resources live: `Arns(Resources("op"), "us-east-1", "1111...")`."""

    resources: Resources
    region: str
    account: str
    partition: str = "aws"

    def of(self, service: str, name: str) -> str:
        if service == "dynamodb":
            return f"arn:{self.partition}:dynamodb:{self.region}:{self.account}:table/{name}"
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{name}"


def readme_text() -> str:
    """The README of this checkout or, installed from a wheel, the one the package was built
    with (its long description)."""
    if CHECKOUT_README.is_file():
        return CHECKOUT_README.read_text()
    return str(metadata.metadata("order-processor").get_payload())  # type: ignore[attr-defined]


def readme_table(text: str) -> dict[str, list[str]]:
    """Program slug (`order-worker`, `audit-status`, ...) -> its SQS, DynamoDB, SNS cells."""
    heading = text.index(TABLE_HEADING)
    lines = text[heading:].splitlines()[1:]
    rows = [line for line in lines[: _table_end(lines)] if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    if header != ["program", "SQS", "DynamoDB", "SNS"]:
        raise ValueError(f"the README's IAM table has changed its columns: {header}")
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


def readme_grants(text: str, arns: Arns) -> dict[str, set[Grant]]:
    """Program slug -> every (action, resource ARN) its row of the table grants."""
    grants: dict[str, set[Grant]] = {}
    previous: list[str] = ["", "", ""]
    for program, cells in readme_table(text).items():
        grants[program] = set()
        for column, (service, cell) in enumerate(zip(SERVICES, cells, strict=True)):
            for actions, targets in _clauses(cell, previous[column]):
                for action in actions:
                    name = f"{service}:{action}"
                    for arn in _arns(arns, service, name, targets):
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
        elif re.fullmatch(r"[A-Z]\w+", token):
            actions.append(token)
        else:
            raise ValueError(f"the README's IAM table names no action here: {token!r}")
    return actions


def _arns(arns: Arns, service: str, action: str, targets: list[str]) -> list[str]:
    if action in UNSCOPED:
        return ["*"]
    if not targets:
        return [arns.of(service, f"{arns.resources.prefix}-*")]
    return [arns.of(service, _resource_name(arns.resources, service, t)) for t in targets]


def _resource_name(resources: Resources, service: str, target: str) -> str:
    prefix = resources.prefix
    if service == "sqs":
        names = {queue.name.removesuffix(".fifo"): queue.name for queue in resources.queues}
        return names[f"{prefix}-{target}"]
    if service == "dynamodb":
        table, _, index = target.partition("/")
        if f"{prefix}-{table}" not in {spec.name for spec in resources.tables}:
            raise ValueError(f"the README's IAM table names an unknown table: {target}")
        return f"{prefix}-{table}" + (f"/{index}" if index else "")
    if f"{prefix}-{target}" not in resources.topics:
        raise ValueError(f"the README's IAM table names an unknown topic: {target}")
    return f"{prefix}-{target}"
