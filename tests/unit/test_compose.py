"""docker-compose.yml cannot run here (no Docker engine): check its structure instead."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "localstack" / "init" / "ready.d" / "10-provision.sh"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    result: dict[str, Any] = compose["services"]
    return result


def test_localstack_is_pinned_healthchecked_and_on_4566(services: dict[str, Any]) -> None:
    localstack = services["localstack"]
    image, _, tag = localstack["image"].partition(":")

    assert image == "localstack/localstack"
    assert tag not in {"", "latest"}
    assert "127.0.0.1:4566:4566" in localstack["ports"]
    assert "/_localstack/init/ready" in " ".join(localstack["healthcheck"]["test"])
    assert set(localstack["environment"]["SERVICES"].split(",")) == {"dynamodb", "sqs", "sns"}


def test_localstack_provisions_through_the_projects_own_code(services: dict[str, Any]) -> None:
    volumes = services["localstack"]["volumes"]

    assert "./localstack/init/ready.d:/etc/localstack/init/ready.d:ro" in volumes
    assert "./src:/opt/order-processor/src:ro" in volumes
    assert os.access(HOOK, os.X_OK)
    assert "-m order_processor.provision" in HOOK.read_text()


def test_worker_is_built_here_waits_for_provisioning_and_can_scale(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]

    assert worker["build"] == "."
    assert (ROOT / "Dockerfile").exists()
    assert worker["depends_on"]["localstack"]["condition"] == "service_healthy"
    assert worker["environment"]["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert "ORDER_PROCESSOR_JWT_SECRET" in worker["environment"]
    # `--scale worker=N` needs no fixed container name and no host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["stop_signal"] == "SIGTERM"


def test_dockerfile_installs_the_package_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "FROM python:3.11" in dockerfile
    assert "COPY src ./src" in dockerfile
    assert 'ENTRYPOINT ["order-processor"]' in dockerfile


def test_the_matcher_and_the_sweeper_run_from_the_same_image(services: dict[str, Any]) -> None:
    for name, kind in (("limit-matcher", "limit-matcher"), ("expiry-sweeper", "expiry-sweeper")):
        service = services[name]
        assert service["build"] == "."
        assert service["command"][:2] == ["worker", kind]
        assert service["environment"] == services["worker"]["environment"]
        assert service["depends_on"]["localstack"]["condition"] == "service_healthy"
