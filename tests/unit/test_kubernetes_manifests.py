"""deploy/kubernetes/ cannot be applied here (no cluster): validate it against the schemas
instead, and check the numbers that must agree across files.

Built-in kinds: the Kubernetes OpenAPI schemas bundled by `kubernetes-validate`, strict
(an unknown field is an error, as `kubectl apply --validate=strict` would say). KEDA kinds:
the schemas in tests/fixtures/keda (see the README there for where they come from).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from order_processor.config import Settings
from order_processor.deployment.resources import Resources

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KEDA_SCHEMAS = ROOT / "tests" / "fixtures" / "keda"
KUBERNETES_VERSION = "1.32.0"
KEDA_KINDS = {"ScaledObject": "scaledobject", "TriggerAuthentication": "triggerauthentication"}
PROGRAMS = {
    "order-worker": ["worker", "orders"],
    "limit-matcher": ["worker", "limit-matcher"],
    "expiry-sweeper": ["worker", "expiry-sweeper"],
    "analytics-worker": ["worker", "analytics"],
    "gateway": ["gateway"],
    "cache-worker": ["worker", "cache"],
}
# The programs that check or mint tokens; the cache worker handles events, which carry none.
AUTHENTICATING = [program for program in PROGRAMS if program != "cache-worker"]
# The programs that read or write the read model.
REDIS_USERS = ["gateway", "cache-worker"]
MIB = 2**20
# The benchmark's figures for one order worker (README, "Benchmark").
CPU_SECONDS_PER_ORDER = 0.00338
ORDERS_PER_SECOND = 225
RSS_BYTES = 85 * MIB

Manifest = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(path for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml")


def load(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


@pytest.fixture(scope="module")
def applied() -> list[Manifest]:
    """What `kubectl apply -k deploy/kubernetes` applies."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return [document for name in kustomization["resources"] for document in load(KUBERNETES / name)]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    [found] = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def validate(manifest: Manifest) -> None:
    """Raise unless the manifest is valid for its kind's schema."""
    kind = manifest.get("kind")
    if kind in KEDA_KINDS:
        schema = json.loads((KEDA_SCHEMAS / f"{KEDA_KINDS[kind]}.schema.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(manifest)
    else:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def container(deployment: Manifest) -> Manifest:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    result: Manifest = only
    return result


def environment(deployment: Manifest, manifests: list[Manifest]) -> dict[str, str]:
    """The plain environment variables the container gets (ConfigMaps, then env values)."""
    values: dict[str, str] = {}
    for source in container(deployment).get("envFrom", []):
        config_map = find(manifests, "ConfigMap", source["configMapRef"]["name"])
        values.update(config_map["data"])
    for variable in container(deployment).get("env", []):
        if "value" in variable:
            values[variable["name"]] = variable["value"]
    return values


def quantity(text: str | int) -> float:
    """A Kubernetes resource quantity: 800m -> 0.8, 128Mi -> 134217728."""
    number, unit = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text)).groups()  # type: ignore[union-attr]
    factors = {"": 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return float(number) * factors[unit]


def test_the_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])

    assert listed == {p.name for p in manifest_files() if not p.name.endswith(".example.yaml")}
    assert kustomization["namespace"] == "order-processor"
    assert {image["name"] for image in kustomization["images"]} == {"order-processor"}


@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: path.name)
def test_every_manifest_is_valid_for_its_kinds_schema(path: Path) -> None:
    documents = load(path)

    assert documents
    for manifest in documents:
        validate(manifest)


@pytest.mark.parametrize(
    ("kind", "name", "path", "value"),
    [
        ("Deployment", "order-worker", ["spec", "template", "spec", "terminationGracePeriod"], 40),
        ("ConfigMap", "order-processor-settings", ["data", "ORDER_PROCESSOR_CONCURRENCY"], 32),
        ("ScaledObject", "order-worker", ["spec", "minReplicas"], 1),
        ("TriggerAuthentication", "order-worker-aws", ["spec", "podIdentity", "provider"], "kube"),
        ("HorizontalPodAutoscaler", "gateway", ["spec", "minReplica"], 2),
        ("Deployment", "gateway", ["spec", "template", "spec", "containers", 0, "lifecycle"], 5),
    ],
)
def test_a_misspelt_or_mistyped_field_is_refused(
    applied: list[Manifest], kind: str, name: str, path: list[str | int], value: object
) -> None:
    broken = json.loads(json.dumps(find(applied, kind, name)))
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value

    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError)):
        validate(broken)


def test_the_programs_run_from_one_image(applied: list[Manifest]) -> None:
    deployments = {m["metadata"]["name"]: m for m in applied if m["kind"] == "Deployment"}

    assert set(deployments) == set(PROGRAMS)
    assert {container(d)["image"] for d in deployments.values()} == {"order-processor"}
    for name, command in PROGRAMS.items():
        assert container(deployments[name])["args"][:2] == command


@pytest.mark.parametrize("program", PROGRAMS)
def test_probes_ask_the_programs_metrics_port_for_livez_and_readyz(
    program: str, applied: list[Manifest]
) -> None:
    deployment = find(applied, "Deployment", program)
    port = int(environment(deployment, applied)["ORDER_PROCESSOR_METRICS_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]

    assert port == 9100
    assert container(deployment)["livenessProbe"]["httpGet"] == {
        "path": "/livez",
        "port": "metrics",
    }
    assert container(deployment)["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "metrics",
    }
    assert ports["metrics"] == port
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port


@pytest.mark.parametrize("program", PROGRAMS)
def test_kubernetes_waits_longer_than_the_shutdown_grace_before_killing(
    program: str, applied: list[Manifest]
) -> None:
    deployment = find(applied, "Deployment", program)
    grace = int(environment(deployment, applied)["ORDER_PROCESSOR_SHUTDOWN_GRACE_SECONDS"])
    # The kubelet's period starts before a preStop pause, the program's grace after it.
    pause = container(deployment).get("lifecycle", {}).get("preStop", {}).get("sleep", {})

    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > (
        pause.get("seconds", 0) + grace
    )


@pytest.mark.parametrize("program", AUTHENTICATING)
def test_the_jwt_secret_comes_from_the_secret_and_nowhere_else(
    program: str, applied: list[Manifest]
) -> None:
    deployment = find(applied, "Deployment", program)
    example = find(load(KUBERNETES / "jwt-secret.example.yaml"), "Secret", "order-processor-jwt")
    [variable] = [
        v for v in container(deployment)["env"] if v["name"] == "ORDER_PROCESSOR_JWT_SECRET"
    ]
    reference = variable["valueFrom"]["secretKeyRef"]

    assert "ORDER_PROCESSOR_JWT_SECRET" not in environment(deployment, applied)
    assert reference == {"name": "order-processor-jwt", "key": "jwt-secret"}
    assert set(example["stringData"]) == {reference["key"]}
    assert not any(m["kind"] == "Secret" for m in applied)


def test_the_cache_worker_is_not_given_the_jwt_secret(applied: list[Manifest]) -> None:
    deployment = find(applied, "Deployment", "cache-worker")
    names = [v["name"] for v in container(deployment)["env"]]

    assert "ORDER_PROCESSOR_JWT_SECRET" not in names
    assert "ORDER_PROCESSOR_JWT_SECRET" not in environment(deployment, applied)


@pytest.mark.parametrize("program", REDIS_USERS)
def test_the_redis_url_comes_from_its_secret_and_the_ttl_from_the_settings(
    program: str, applied: list[Manifest]
) -> None:
    deployment = find(applied, "Deployment", program)
    example = find(load(KUBERNETES / "redis-url.example.yaml"), "Secret", "order-processor-redis")
    [variable] = [v for v in container(deployment)["env"] if v["name"] == "REDIS_URL"]
    settings = environment(deployment, applied)

    assert variable["valueFrom"]["secretKeyRef"] == {
        "name": "order-processor-redis",
        "key": "redis-url",
    }
    assert "REDIS_URL" not in settings
    assert set(example["stringData"]) == {"redis-url"}
    # TLS, as ElastiCache Serverless always is.
    assert example["stringData"]["redis-url"].startswith("rediss://")
    assert settings["ORDER_PROCESSOR_CACHE_TTL_SECONDS"] == "60"
    # ElastiCache Serverless speaks only cluster mode.
    assert settings["ORDER_PROCESSOR_REDIS_CLUSTER"] == "true"
    assert Settings.from_env(
        {"REDIS_URL": example["stringData"]["redis-url"], **settings}
    ).redis_cluster


def test_the_gateway_serves_its_api_on_8080_behind_its_service(applied: list[Manifest]) -> None:
    deployment = find(applied, "Deployment", "gateway")
    service = find(applied, "Service", "gateway")
    settings = environment(deployment, applied)
    ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    [port] = service["spec"]["ports"]

    assert settings["ORDER_PROCESSOR_GATEWAY_HOST"] == "0.0.0.0"
    assert int(settings["ORDER_PROCESSOR_GATEWAY_PORT"]) == ports["api"] == 8080
    assert port["targetPort"] == "api"
    assert service["spec"]["selector"].items() <= labels.items()
    # Only the gateway's pods: a Service selecting every program would send requests to
    # workers that serve no API.
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"


def test_the_gateway_scales_on_cpu_and_keeps_two_replicas(applied: list[Manifest]) -> None:
    autoscaler = find(applied, "HorizontalPodAutoscaler", "gateway")
    [metric] = autoscaler["spec"]["metrics"]
    budget = find(applied, "PodDisruptionBudget", "gateway")
    labels = find(applied, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]

    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] < 100
    assert 2 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"]
    assert budget["spec"]["maxUnavailable"] < autoscaler["spec"]["minReplicas"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("program", PROGRAMS)
def test_each_program_has_its_own_irsa_service_account(
    program: str, applied: list[Manifest]
) -> None:
    deployment = find(applied, "Deployment", program)
    account = find(
        applied, "ServiceAccount", deployment["spec"]["template"]["spec"]["serviceAccountName"]
    )
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]

    assert account["metadata"]["name"] == program
    assert re.fullmatch(rf"arn:aws:iam::\d{{12}}:role/op-{program}", role)


@pytest.mark.parametrize("program", PROGRAMS)
def test_programs_run_unprivileged_on_a_read_only_root(
    program: str, applied: list[Manifest]
) -> None:
    deployment = find(applied, "Deployment", program)
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    own = container(deployment)["securityContext"]

    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"]["drop"] == ["ALL"]


def test_the_order_worker_is_sized_from_the_benchmark(applied: list[Manifest]) -> None:
    resources = container(find(applied, "Deployment", "order-worker"))["resources"]
    busy_cores = CPU_SECONDS_PER_ORDER * ORDERS_PER_SECOND

    assert busy_cores <= quantity(resources["requests"]["cpu"]) <= busy_cores * 1.1
    # One event loop: a second core would go unused.
    assert quantity(resources["limits"]["cpu"]) == 1
    assert RSS_BYTES <= quantity(resources["requests"]["memory"]) <= 2 * RSS_BYTES
    assert quantity(resources["limits"]["memory"]) >= 2 * RSS_BYTES


@pytest.mark.parametrize("program", PROGRAMS)
def test_requests_fit_within_limits_and_hold_the_measured_rss(
    program: str, applied: list[Manifest]
) -> None:
    resources = container(find(applied, "Deployment", program))["resources"]

    for kind in ("cpu", "memory"):
        assert quantity(resources["requests"][kind]) <= quantity(resources["limits"][kind])
    assert quantity(resources["requests"]["memory"]) >= RSS_BYTES


def test_keda_scales_the_order_worker_on_its_commands_queue(applied: list[Manifest]) -> None:
    scaled = find(applied, "ScaledObject", "order-worker")
    [trigger] = scaled["spec"]["triggers"]
    settings = environment(find(applied, "Deployment", "order-worker"), applied)
    resources = Resources(
        prefix=settings["ORDER_PROCESSOR_PREFIX"],
        fifo_commands=settings["ORDER_PROCESSOR_QUEUE_KIND"] == "fifo",
    )
    authentication = find(applied, "TriggerAuthentication", trigger["authenticationRef"]["name"])

    assert scaled["spec"]["scaleTargetRef"]["name"] == "order-worker"
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"].rsplit("/", 1)[1] == resources.commands_queue.name
    assert trigger["metadata"]["queueURL"].rsplit("/", 1)[1] == "op-order-commands.fifo"
    assert trigger["metadata"]["awsRegion"] == settings["AWS_REGION"]
    assert authentication["spec"]["podIdentity"] == {"provider": "aws", "identityOwner": "workload"}
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]


def test_keda_adds_a_replica_per_concurrency_worth_of_messages(applied: list[Manifest]) -> None:
    [trigger] = find(applied, "ScaledObject", "order-worker")["spec"]["triggers"]
    settings = environment(find(applied, "Deployment", "order-worker"), applied)
    concurrency = int(settings["ORDER_PROCESSOR_CONCURRENCY"])

    assert int(trigger["metadata"]["queueLength"]) == concurrency
    # In-flight messages are the worker's load: they count.
    assert trigger["metadata"]["scaleOnInFlight"] == "true"


def test_one_metrics_service_selects_every_program(applied: list[Manifest]) -> None:
    service = find(applied, "Service", "order-processor-metrics")
    selector = service["spec"]["selector"]

    for program in PROGRAMS:
        labels = find(applied, "Deployment", program)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == 9100


def test_a_reapply_leaves_the_replica_counts_to_keda_and_the_autoscaler(
    applied: list[Manifest],
) -> None:
    assert "replicas" not in find(applied, "Deployment", "order-worker")["spec"]
    assert "replicas" not in find(applied, "Deployment", "gateway")["spec"]
    assert find(applied, "Deployment", "cache-worker")["spec"]["replicas"] == 1
    assert find(applied, "Deployment", "limit-matcher")["spec"]["replicas"] == 1
    assert find(applied, "Deployment", "expiry-sweeper")["spec"]["replicas"] == 1
