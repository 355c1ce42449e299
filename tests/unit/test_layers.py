"""The layout's promise, checked: each room of the package (a folder, or a module at its
root) is a layer of its own, and imports only the rooms inside it, so no two rooms import
each other (a folder cycle is an import that points outward). Some rooms have a rule of
their own: what a line of code there may import. Nothing imports an entrypoint (workers).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import order_processor

ROOT = Path(order_processor.__file__).parent
# Inner to outer; a room imports only the rooms before it. A new room (a folder for the
# deploy-time modules, say) is one line here, placed after what it imports; moving rooms
# into it means replacing their lines by its one.
LAYERS = [
    "exceptions",
    "awserrors",
    "deployment",
    "domain",
    "security",
    "config",
    "saga",
    "store",
    "messaging",
    "readmodel",
    "observability",
    "analytics",
    "aws",
    "faultproxy",
    "handlers",
    "ops",
    "gateway",
    "bootstrap",
    "dashboard",
    "demo",
    "cli",
]
# The rooms with a rule of their own: everything they may import of ours.
MAY_IMPORT: dict[str, set[str]] = {
    # Pure: the trading rules, their types and their ports; nothing of ours but the errors.
    "domain": {"exceptions"},
    "security": {"domain", "exceptions"},
    # Decides from one read what to write, through the domain's ports.
    "saga": {"domain", "exceptions"},
    # Adapters build AWS requests; they never decide, so never import saga or handlers.
    "store": {"domain", "exceptions", "awserrors"},
    "messaging": {"domain", "exceptions", "awserrors", "security"},
    # The gateway's read model: an adapter over Redis, knowing only the domain's types.
    "readmodel": {"domain", "exceptions"},
    # The HTTP API over its ports; its DynamoDB adapter composes the store's DAOs, its
    # fakes name a command as the producer does. Never the bootstrap or the settings.
    "gateway": {"domain", "exceptions", "security", "readmodel", "messaging", "store"},
    # Talk to ports, never to the store; messaging only for the consumer's contract.
    "handlers": {
        "domain",
        "exceptions",
        "awserrors",
        "saga",
        "security",
        "messaging",
        "analytics",
        "readmodel",
    },
}


def imports_of(path: Path) -> list[str]:
    found = []
    # A relative import, resolved against the file's own package.
    package = ["order_processor", *path.relative_to(ROOT).parts[:-1]]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
            if node.module is None:
                found += [f"{module}.{alias.name}" for alias in node.names]
            else:
                found.append(module)
        elif isinstance(node, ast.ImportFrom) and node.module == "order_processor":
            found += [f"order_processor.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def room_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def room_imports() -> dict[str, dict[str, list[str]]]:
    """Room -> the other rooms it imports -> the files that import each."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(ROOT.rglob("*.py")):
        own = room_of(path)
        if own == "__init__":
            continue
        graph[own]  # a room that imports nothing of ours is a room too
        for module in imports_of(path):
            parts = module.split(".")
            if parts[0] == "order_processor" and len(parts) > 1 and parts[1] != own:
                graph[own][parts[1]].append(str(path.relative_to(ROOT)))
    return graph


def outward(graph: dict[str, dict[str, list[str]]], layers: list[str]) -> list[str]:
    rank = {room: index for index, room in enumerate(layers)}
    return [
        f"{room} imports {other} ({', '.join(files)})"
        for room, imported in graph.items()
        for other, files in imported.items()
        if rank.get(other, len(layers)) >= rank[room]
    ]


def test_every_room_has_a_layer() -> None:
    assert sorted(set(room_imports()) - set(LAYERS)) == []
    assert len(set(LAYERS)) == len(LAYERS)


def test_every_import_points_inward_so_no_two_rooms_import_each_other() -> None:
    assert outward(room_imports(), LAYERS) == []


def test_a_folder_cycle_is_an_import_that_points_outward() -> None:
    """The cycle this test once let through: security/tokens.py took the domain's clock
    while domain/events.py took security's redactor."""
    cycle = {
        "domain": {"security": ["domain/events.py"]},
        "security": {"domain": ["security/tokens.py"]},
    }

    assert outward(cycle, ["domain", "security"]) == ["domain imports security (domain/events.py)"]
    assert outward(cycle, ["security", "domain"]) == [
        "security imports domain (security/tokens.py)"
    ]


def test_each_room_with_a_rule_imports_only_what_it_may() -> None:
    graph = room_imports()
    beyond = {
        room: sorted(set(graph[room]) - allowed)
        for room, allowed in MAY_IMPORT.items()
        if set(graph[room]) - allowed
    }
    assert beyond == {}


def test_the_rules_agree_with_the_layers() -> None:
    rank = {room: index for index, room in enumerate(LAYERS)}
    assert {
        room: sorted(other for other in allowed if rank[other] >= rank[room])
        for room, allowed in MAY_IMPORT.items()
    } == {room: [] for room in MAY_IMPORT}


def test_nothing_imports_an_entrypoint() -> None:
    found = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted(ROOT.rglob("*.py"))
        for module in imports_of(path)
        if module.split(".")[0] == "workers"
    ]
    assert found == []


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


def test_a_relative_import_is_the_import_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`from ..store.orders import OrderDAO` in handlers/ imports the store as surely as
    `from order_processor.store.orders import OrderDAO` does: a rule a relative import
    slips past is no rule."""
    handlers = tmp_path / "handlers"
    handlers.mkdir()
    module = handlers / "sneaky.py"
    module.write_text(
        "from ..store.orders import OrderDAO\n"
        "from .. import store\n"
        "from . import trails\n"
        "from .answers import reject\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)

    assert imports_of(module) == [
        "order_processor.store.orders",
        "order_processor.store",
        "order_processor.handlers.trails",
        "order_processor.handlers.answers",
    ]


def test_no_decision_reads_the_read_model() -> None:
    """DESIGN: the read model serves reads, never decisions. The saga and every handler
    but the cache worker's (the matcher, the sweeper, the order worker's commands) never
    import it; nor does the store they decide from."""
    graph = room_imports()
    deciding = {
        path for room in ("saga", "store", "handlers") for path in graph[room].get("readmodel", [])
    }

    assert deciding == {"handlers/cache.py"}
