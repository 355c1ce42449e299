"""What produced a result: the machine, the interpreter, the packages, the command."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("aioboto3", "aiobotocore", "boto3", "botocore", "pydantic", "structlog")


def describe_machine() -> dict[str, Any]:
    memory_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "emulator": "ministack " + _emulator_version(),
        "command": " ".join(["python", "-m", "bench.run", *sys.argv[1:]]),
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _emulator_version() -> str:
    from order_processor.deployment.emulator import default_venv

    for path in (default_venv() / "lib").glob("python*/site-packages/ministack-*.dist-info"):
        return path.name.split("-")[1].removesuffix(".dist")
    return "unknown"
