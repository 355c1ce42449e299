"""The layout's promise, checked: imports point inward. domain ← saga ← store, messaging
(adapters) ← handlers ← ops ← bootstrap ← demo, dashboard ← cli (programs); nothing imports an
entrypoint (cli, workers)."""

from __future__ import annotations

import ast
from pathlib import Path

import order_processor

ROOT = Path(order_processor.__file__).parent
# A module may import its own layer and those below it.
LAYERS = {
    "exceptions": 0,
    "domain": 0,
    "security": 0,
    "deployment": 0,
    "config": 0,
    "awserrors": 0,
    "saga": 1,
    "store": 2,
    "messaging": 2,
    "observability": 2,
    "aws": 2,
    "faultproxy": 2,
    "handlers": 3,
    "ops": 4,
    "bootstrap": 5,
    "demo": 6,
    "dashboard": 6,
    "cli": 7,
}


def imports_of(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_every_import_points_inward_and_none_reaches_an_entrypoint() -> None:
    outward = []
    for path in sorted(ROOT.rglob("*.py")):
        own = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if own not in LAYERS:
            continue
        for module in imports_of(path):
            parts = module.split(".")
            if parts[0] == "workers" or (
                parts[0] == "order_processor"
                and len(parts) > 1
                and LAYERS.get(parts[1], -1) > LAYERS[own]
            ):
                outward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert outward == []


def test_the_saga_builds_no_aws_request() -> None:
    saga = [p for p in (ROOT / "saga").rglob("*.py")] + [ROOT / "domain" / "ports.py"]
    text = "\n".join(p.read_text() for p in saga)
    assert not any(
        module.startswith(("botocore", "boto3", "aioboto3"))
        for p in saga
        for module in imports_of(p)
    )
    for request_word in ("TransactItems", "ConditionExpression", "TableName", "RequestItems"):
        assert request_word not in text
