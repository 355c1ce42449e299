"""The LocalStack ready hook, run as LocalStack would run it, against the live endpoint,
with a Python that has botocore but none of the project's dependencies (MiniStack's)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from order_processor.config import Settings
from order_processor.deployment.emulator import default_venv
from tests.support import Clients, destroy

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "localstack" / "init" / "ready.d" / "10-provision.sh"


@pytest.fixture
def cleanup(settings: Settings) -> Iterator[None]:
    yield
    destroy(settings)


@pytest.mark.usefixtures("cleanup")
def test_ready_hook_provisions_with_botocore_alone(settings: Settings) -> None:
    assert settings.endpoint_url is not None
    bare_python = default_venv() / "bin" / "python"
    environment = {
        "PATH": os.environ["PATH"],
        "AWS_ENDPOINT_URL": settings.endpoint_url,
        "ORDER_PROCESSOR_PREFIX": settings.prefix,
        "ORDER_PROCESSOR_SRC": str(ROOT / "src"),
        "LOCALSTACK_PYTHON": str(bare_python),
    }

    result = subprocess.run(
        [str(HOOK)], env=environment, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "21 created, 0 updated, 0 unchanged"
    again = Clients(settings).provisioner().apply(settings.resources())
    assert {c.action.value for c in again} == {"unchanged"}
