"""The API's OpenAPI document, generated from the app (its models are the contract's),
checked in as `docs/openapi.json`: `python -m order_processor.gateway.openapi` (`make
openapi`) writes it again, and a test fails while the checked-in one is stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from order_processor.gateway.app import create_app
from order_processor.gateway.deps import Gateway
from order_processor.gateway.memory import MemoryGatewayReads, RecordingSender
from order_processor.readmodel.memory import MemoryReadModel
from order_processor.security.tokens import TokenManager

DOCUMENT = Path("docs/openapi.json")


def document() -> dict[str, Any]:
    """The document of an app over placeholders: the document depends on the routes and
    models alone, never on the ports behind them."""
    placeholder = "an OpenAPI document signs nothing, but a key is required"
    gateway = Gateway(
        reads=MemoryGatewayReads(),
        commands=RecordingSender(),
        read_model=MemoryReadModel(),
        tokens=TokenManager(placeholder),
        secret=placeholder.encode(),
    )
    return create_app(gateway).openapi()


def rendered() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else DOCUMENT
    target.write_text(rendered())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
