"""docker-compose.yml cannot run here (no Docker engine): check its structure instead."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "localstack" / "init" / "ready.d" / "10-provision.sh"
PROGRAMS = {
    "worker": "orders",
    "limit-matcher": "limit-matcher",
    "expiry-sweeper": "expiry-sweeper",
    "analytics": "analytics",
}
# The read model's programs: the service and its command.
READ_MODEL = {"gateway": ["gateway"], "cache": ["worker", "cache"]}
EVERY_PROGRAM = [*PROGRAMS, *READ_MODEL]


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
    assert "-m order_processor.deployment.provision" in HOOK.read_text()


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


def test_one_image_is_built_once_and_run_by_every_program(
    services: dict[str, Any],
) -> None:
    image = services["worker"]["image"]

    assert image
    assert [name for name in PROGRAMS if "build" in services[name]] == ["worker"]
    for name, kind in PROGRAMS.items():
        service = services[name]
        assert service["image"] == image
        assert service["command"][:2] == ["worker", kind]
        assert service["environment"] == services["worker"]["environment"]
        assert service["depends_on"]["localstack"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", EVERY_PROGRAM)
def test_every_program_runs_under_an_init_that_forwards_sigterm(
    name: str, services: dict[str, Any]
) -> None:
    assert services[name]["init"] is True
    assert services[name]["stop_signal"] == "SIGTERM"


@pytest.mark.parametrize("name", EVERY_PROGRAM)
def test_docker_waits_longer_than_the_shutdown_grace_before_killing(
    name: str, services: dict[str, Any]
) -> None:
    service = services[name]
    grace = int(service["environment"]["ORDER_PROCESSOR_SHUTDOWN_GRACE_SECONDS"])

    assert seconds(service["stop_grace_period"]) > grace


@pytest.mark.parametrize("name", PROGRAMS)
def test_every_program_is_healthchecked_by_its_own_readiness_checks(
    name: str, services: dict[str, Any]
) -> None:
    service = services[name]

    assert service["healthcheck"]["test"] == [
        "CMD",
        "order-processor",
        "health",
        "--program",
        PROGRAMS[name],
    ]
    assert service["environment"]["ORDER_PROCESSOR_METRICS_PORT"] == "9100"
    assert "--metrics-port" not in service["command"]


def test_redis_is_pinned_healthchecked_and_on_localhost_only(services: dict[str, Any]) -> None:
    redis = services["redis"]
    image, _, tag = redis["image"].partition(":")

    assert image == "redis"
    assert tag.startswith("7.")
    assert redis["ports"] == ["127.0.0.1:6379:6379"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    # A cache: nothing written to disk.
    assert redis["command"] == ["redis-server", "--save", "", "--appendonly", "no"]


@pytest.mark.parametrize("name", READ_MODEL)
def test_the_read_model_programs_run_the_one_image_against_redis_once_it_answers(
    name: str, services: dict[str, Any]
) -> None:
    service = services[name]
    environment = service["environment"]

    assert service["image"] == services["worker"]["image"]
    assert "build" not in service
    assert service["command"] == READ_MODEL[name]
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["ORDER_PROCESSOR_CACHE_TTL_SECONDS"] == "60"
    assert environment["ORDER_PROCESSOR_REDIS_CLUSTER"] == "false"
    assert service["depends_on"] == {
        "localstack": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    # The workers' AWS settings, unchanged.
    shared = {k: v for k, v in services["worker"]["environment"].items() if "JWT" not in k}
    assert shared.items() <= environment.items()


def test_only_the_gateway_gets_the_jwt_secret_and_publishes_its_api(
    services: dict[str, Any],
) -> None:
    gateway, cache = services["gateway"], services["cache"]
    environment = gateway["environment"]

    assert (
        environment["ORDER_PROCESSOR_JWT_SECRET"]
        == (services["worker"]["environment"]["ORDER_PROCESSOR_JWT_SECRET"])
    )
    assert "ORDER_PROCESSOR_JWT_SECRET" not in cache["environment"]
    assert environment["ORDER_PROCESSOR_GATEWAY_HOST"] == "0.0.0.0"
    port = environment["ORDER_PROCESSOR_GATEWAY_PORT"]
    assert gateway["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert "ports" not in cache


class Readyz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def run_readyz_healthcheck(services: dict[str, Any], name: str, status: int | None) -> int:
    """Run the service's healthcheck with the image's Python (here: this one), its port
    9100 replaced by a server answering `status` (None: nothing listening)."""
    kind, *command = services[name]["healthcheck"]["test"]
    assert kind == "CMD"
    assert command[0] == "python"
    handler = type("Answer", (Readyz,), {"status": status or 200})
    with http.server.HTTPServer(("127.0.0.1", 0), handler) as server:
        port = server.server_address[1]
        if status is not None:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        else:
            server.server_close()
        script = command[-1].replace("127.0.0.1:9100", f"127.0.0.1:{port}")
        result = subprocess.run(
            [sys.executable, *command[1:-1], script], capture_output=True, check=False, timeout=10
        )
        if status is not None:
            server.shutdown()
    return result.returncode


@pytest.mark.parametrize("name", READ_MODEL)
def test_the_read_model_programs_are_healthy_exactly_when_their_readyz_says_so(
    name: str, services: dict[str, Any]
) -> None:
    assert "127.0.0.1:9100/readyz" in services[name]["healthcheck"]["test"][-1]
    assert services[name]["environment"]["ORDER_PROCESSOR_METRICS_PORT"] == "9100"
    assert run_readyz_healthcheck(services, name, 200) == 0
    assert run_readyz_healthcheck(services, name, 503) != 0
    assert run_readyz_healthcheck(services, name, None) != 0


def seconds(duration: str) -> int:
    """A compose duration: 30s, 1m30s, 2m."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, duration
    assert match, duration
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


SUCCESS = {
    "completed": True,
    "scripts": [{"stage": "READY", "name": "10-provision.sh", "state": "SUCCESSFUL"}],
}
FAILED = {
    "completed": True,
    "scripts": [{"stage": "READY", "name": "10-provision.sh", "state": "ERROR"}],
}
RUNNING = {
    "completed": False,
    "scripts": [{"stage": "READY", "name": "10-provision.sh", "state": "RUNNING"}],
}
ONE_OF_TWO_FAILED = {
    "completed": True,
    "scripts": [
        {"stage": "READY", "name": "10-provision.sh", "state": "SUCCESSFUL"},
        {"stage": "READY", "name": "20-seed.sh", "state": "ERROR"},
    ],
}
NO_SCRIPTS = {"completed": True, "scripts": []}


def run_localstack_healthcheck(
    services: dict[str, Any], tmp_path: Path, response: str | None
) -> tuple[int, list[str]]:
    """Run the healthcheck with `sh`, curl replaced by a stub that answers `response`
    (None: connection refused, as curl exits while LocalStack is not listening yet)."""
    kind, command = services["localstack"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "curl-calls"
    stub = bin_dir / "curl"
    if response is None:
        stub.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 7\n')
    else:
        (tmp_path / "response.json").write_text(response)
        stub.write_text(f'#!/bin/sh\necho "$@" >> {calls}\ncat {tmp_path / "response.json"}\n')
    stub.chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    # Compose turns `$$` into `$` before the shell sees the command.
    result = subprocess.run(
        ["sh", "-c", command.replace("$$", "$")], env=environment, check=False, timeout=10
    )
    return result.returncode, calls.read_text().splitlines()


@pytest.mark.parametrize(
    "response",
    [
        json.dumps(SUCCESS),
        json.dumps(SUCCESS, separators=(",", ":")),
        json.dumps(SUCCESS, indent=2),
    ],
    ids=["localstack-spacing", "compact", "indented"],
)
def test_localstack_is_healthy_once_its_provisioning_succeeded(
    services: dict[str, Any], tmp_path: Path, response: str
) -> None:
    status, calls = run_localstack_healthcheck(services, tmp_path, response)

    assert status == 0
    assert len(calls) == 1
    assert "http://localhost:4566/_localstack/init/ready" in calls[0].split()


@pytest.mark.parametrize(
    "response",
    [
        json.dumps(FAILED),
        json.dumps(FAILED, separators=(",", ":")),
        json.dumps(ONE_OF_TWO_FAILED),
        json.dumps(RUNNING),
        json.dumps(NO_SCRIPTS),
        None,
    ],
    ids=["failed", "failed-compact", "one-of-two-failed", "not-completed", "no-script", "down"],
)
def test_localstack_is_unhealthy_while_provisioning_has_not_succeeded(
    services: dict[str, Any], tmp_path: Path, response: str | None
) -> None:
    status, calls = run_localstack_healthcheck(services, tmp_path, response)

    assert status != 0
    assert len(calls) == 1
