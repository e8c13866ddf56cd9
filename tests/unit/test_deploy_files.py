"""Offline checks of the deployment files: Dockerfile, docker-compose.yml and deploy/k8s/.

Everything here reads the files with PyYAML and needs no Docker engine and no cluster.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragline.config import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

STAGES = {"gateway": 50051, "chunker": 50052, "embedder": 50053, "indexer": 50054}
METRICS_PORT = 9464
HTTP_PORT = 8080
GRAFANA = ROOT / "deploy" / "grafana"
CONFIGMAP = "ragline-config"
DRAIN_GRACE_S = 60

SETTINGS_VARS = frozenset(
    f"RAGLINE_{f.name.upper()}" for f in dataclasses.fields(Settings) if f.name != "extra"
)
ENV_NAME = re.compile(r"\bRAGLINE_[A-Z0-9_]+\b")

Doc = dict[str, Any]


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))


def load_docs(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def all_docs() -> list[Doc]:
    return [d for p in k8s_files() if p.name != "kustomization.yaml" for d in load_docs(p)]


def find(kind: str, name: str, docs: list[Doc] | None = None) -> Doc:
    matches = [
        d
        for d in (all_docs() if docs is None else docs)
        if d["kind"] == kind and d["metadata"]["name"] == name
    ]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def deployments() -> list[Doc]:
    return [d for d in all_docs() if d["kind"] == "Deployment"]


def containers(workload: Doc) -> Iterator[Doc]:
    yield from workload["spec"]["template"]["spec"]["containers"]


def compose() -> Doc:
    with COMPOSE.open(encoding="utf-8") as f:
        data: Doc = yaml.safe_load(f)  # SafeLoader resolves the `<<: *anchor` merge keys.
    return data


def env_of(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory(quantity: str | int) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    text = str(quantity)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# --- Kubernetes -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: p.name)
def test_every_manifest_parses(path: Path) -> None:
    docs = load_docs(path)
    assert docs, f"{path.name} holds no document"
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: apiVersion/kind missing"
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"]
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == "ragline", doc["metadata"]["name"]


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_docs(K8S / "kustomization.yaml")[0]
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    on_disk = {p.name for p in k8s_files()} - {"kustomization.yaml"}
    assert set(listed) == on_disk
    assert kustomization["namespace"] == "ragline"


@pytest.mark.parametrize("stage", STAGES)
def test_stage_has_deployment_and_matching_service(stage: str) -> None:
    port = STAGES[stage]
    docs = load_docs(K8S / f"{stage}.yaml")
    deployment = find("Deployment", stage, docs)
    service = find("Service", stage, docs)

    match_labels = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert match_labels.items() <= pod_labels.items()
    assert service["spec"]["selector"] == match_labels
    # The selector picks this stage's pods only, not every ragline pod.
    assert any(v == stage for v in match_labels.values())

    (container,) = containers(deployment)
    assert container["args"] == ["serve", stage]
    ports = {p.get("name", str(p["containerPort"])): p["containerPort"] for p in container["ports"]}
    # The gateway also serves the HTTP/JSON API, on a port of its own.
    http = {"http": HTTP_PORT} if stage == "gateway" else {}
    assert ports == {"grpc": port, "metrics": METRICS_PORT, **http}
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(service_ports) == {"grpc", *http}
    service_port = service_ports["grpc"]
    assert service_port["port"] == port
    target = service_port.get("targetPort", port)
    assert ports.get(target, target) == port, "the Service's targetPort is not the container port"

    env = env_of(container)
    assert env["RAGLINE_LISTEN_ADDRESS"] == f"0.0.0.0:{port}"
    assert {"configMapRef": {"name": CONFIGMAP}} in container["envFrom"]
    if http:
        assert service_ports["http"]["port"] == HTTP_PORT
        assert ports[service_ports["http"]["targetPort"]] == HTTP_PORT
        assert env["RAGLINE_HTTP_ADDRESS"] == f"0.0.0.0:{HTTP_PORT}"


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["metadata"]["name"])
def test_containers_have_grpc_probes_limits_and_run_as_non_root(deployment: Doc) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= DRAIN_GRACE_S
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in containers(deployment):
        (port,) = (p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, f"{probe} is not gRPC on {port}"
        if "startupProbe" in container:
            assert container["startupProbe"]["grpc"]["port"] == port
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources[bound].keys(), f"{bound} incomplete"
        assert cpu(resources["requests"]["cpu"]) <= cpu(resources["limits"]["cpu"])
        assert memory(resources["requests"]["memory"]) <= memory(resources["limits"]["memory"])
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]


def test_every_stage_has_a_deployment_and_the_embedder_is_the_largest() -> None:
    by_name = {d["metadata"]["name"]: d for d in deployments()}
    assert set(by_name) == set(STAGES)
    limits = {name: next(containers(d))["resources"]["limits"] for name, d in by_name.items()}
    for name in set(STAGES) - {"embedder"}:
        assert cpu(limits["embedder"]["cpu"]) > cpu(limits[name]["cpu"]), name
        assert memory(limits["embedder"]["memory"]) > memory(limits[name]["memory"]), name


def test_hpa_scales_the_embedder_and_nothing_else() -> None:
    hpas = [d for d in all_docs() if d["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpas) == 1, "only the embedder is autoscaled"
    (hpa,) = hpas
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "embedder",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 8)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # The HPA owns the embedder's replica count; a fixed one would be reset on every apply.
    assert "replicas" not in find("Deployment", "embedder")["spec"]


def test_indexer_is_one_recreated_replica_with_its_milvus_lite_file_on_a_pvc() -> None:
    indexer = find("Deployment", "indexer")
    assert indexer["spec"]["replicas"] == 1
    assert indexer["spec"]["strategy"]["type"] == "Recreate"
    pod = indexer["spec"]["template"]["spec"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    milvus_uri = find("ConfigMap", CONFIGMAP)["data"]["RAGLINE_MILVUS_URI"]
    lite_dir = str(Path(milvus_uri).parent)
    (volume,) = (name for name, path in mounts.items() if path == lite_dir)
    find("PersistentVolumeClaim", claims[volume])
    # Nothing else mounts a volume claim: only the indexer opens Milvus Lite.
    for other in deployments():
        if other["metadata"]["name"] != "indexer":
            volumes = other["spec"]["template"]["spec"].get("volumes", [])
            assert not [v for v in volumes if "persistentVolumeClaim" in v], other["metadata"]


def test_the_gateway_requires_api_keys_from_a_whole_secret_volume() -> None:
    gateway = find("Deployment", "gateway")
    pod = gateway["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    keys_file = Path(env_of(container)["RAGLINE_KEYS_FILE"])
    (mount,) = (m for m in container["volumeMounts"] if m["mountPath"] == str(keys_file.parent))
    # A subPath mount would never see the Secret's updates, so keys would not reload.
    assert "subPath" not in mount and mount["readOnly"] is True
    (volume,) = (v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "ragline-keys"
    assert "RAGLINE_KEYS_FILE" not in find("ConfigMap", CONFIGMAP)["data"]
    # Only the gateway faces clients; the stages behind it take no keys.
    for other in deployments():
        if other["metadata"]["name"] != "gateway":
            assert all("RAGLINE_KEYS_FILE" not in env_of(c) for c in containers(other))


def test_compose_runs_without_api_keys_for_local_use() -> None:
    for service in compose()["services"].values():
        assert "RAGLINE_KEYS_FILE" not in service.get("environment", {})


def test_redis_is_a_durable_statefulset_that_never_evicts() -> None:
    redis = find("StatefulSet", "redis")
    (container,) = containers(redis)
    args = " ".join(container.get("command", []) + container.get("args", []))
    assert "--appendonly yes" in args
    assert "--appendfsync everysec" in args
    assert "--maxmemory-policy noeviction" in args
    assert redis["spec"]["volumeClaimTemplates"]
    service = find("Service", "redis")
    assert service["spec"]["selector"].items() <= (
        redis["spec"]["template"]["metadata"]["labels"].items()
    )
    data = find("ConfigMap", CONFIGMAP)["data"]
    assert data["RAGLINE_REDIS_URL"].startswith("redis://redis:6379")


def test_configmap_addresses_name_the_stage_services() -> None:
    data = find("ConfigMap", CONFIGMAP)["data"]
    for stage, port in STAGES.items():
        assert data[f"RAGLINE_{stage.upper()}_ADDRESS"] == f"{stage}:{port}"
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["metadata"]["name"])
def test_every_pod_asks_prometheus_to_scrape_its_metrics_port(deployment: Doc) -> None:
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    (container,) = containers(deployment)
    (metrics_port,) = (p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    assert annotations["prometheus.io/port"] == str(metrics_port)
    # The port the pod serves on: the ConfigMap's RAGLINE_METRICS_ADDRESS, not overridden.
    address = find("ConfigMap", CONFIGMAP)["data"]["RAGLINE_METRICS_ADDRESS"]
    assert address == f"0.0.0.0:{metrics_port}"
    assert "RAGLINE_METRICS_ADDRESS" not in env_of(container)


def test_the_grafana_dashboard_parses_and_queries_only_ragline_metrics() -> None:
    (path,) = GRAFANA.glob("*.json")
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 10
    # Every query names a ragline metric; tests/e2e/test_metrics.py checks each is exported.
    assert all(re.search(r"\bragline_[a-z_]+", e) for e in exprs), exprs
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("backlog", "age", "throughput", "retr", "dead", "tokens", "padding", "latency"):
        assert topic in titles, topic


# --- RAGLINE_* names --------------------------------------------------------------------------


def env_name_sources() -> list[Path]:
    return [*k8s_files(), K8S / "README.md", COMPOSE, DOCKERFILE]


@pytest.mark.parametrize("path", env_name_sources(), ids=lambda p: p.name)
def test_every_ragline_variable_is_a_settings_field(path: Path) -> None:
    named = set(ENV_NAME.findall(path.read_text(encoding="utf-8")))
    unknown = named - SETTINGS_VARS
    assert not unknown, f"{path.name} names variables that Settings does not read: {unknown}"


def test_the_variable_scan_sees_the_structured_names() -> None:
    """Guards the regex scan above: every name set in a manifest or compose file is seen by it."""
    structured: set[str] = set(find("ConfigMap", CONFIGMAP)["data"])
    for deployment in deployments():
        for container in containers(deployment):
            structured |= set(env_of(container))
    for service in compose()["services"].values():
        structured |= {k for k in service.get("environment", {}) if k.startswith("RAGLINE_")}
    assert {"RAGLINE_REDIS_URL", "RAGLINE_LISTEN_ADDRESS", "RAGLINE_BROKER"} <= structured
    assert structured <= SETTINGS_VARS, structured - SETTINGS_VARS


# --- docker compose ---------------------------------------------------------------------------


def test_compose_stages_share_one_image_and_build() -> None:
    services = compose()["services"]
    stages = {name: services[name] for name in STAGES}
    images = {(s["image"], yaml.safe_dump(s["build"], sort_keys=True)) for s in stages.values()}
    assert len(images) == 1, "every stage runs the same image from the same build"
    for name, service in stages.items():
        port = STAGES[name]
        assert service["command"] == ["serve", name]
        assert "profiles" not in service, "the stages run in every profile"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        env = service["environment"]
        assert env["RAGLINE_LISTEN_ADDRESS"] == f"0.0.0.0:{port}"
        assert env["RAGLINE_REDIS_URL"].startswith("redis://redis:")
        for peer, peer_port in STAGES.items():
            assert env[f"RAGLINE_{peer.upper()}_ADDRESS"] == f"{peer}:{peer_port}"
    assert stages["embedder"]["deploy"]["replicas"] == 1


def test_compose_publishes_the_gateway_http_api() -> None:
    gateway = compose()["services"]["gateway"]
    assert gateway["environment"]["RAGLINE_HTTP_ADDRESS"] == f"0.0.0.0:{HTTP_PORT}"
    assert f"{HTTP_PORT}:{HTTP_PORT}" in gateway["ports"]


def test_compose_redis_is_durable_and_never_evicts() -> None:
    redis = compose()["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = redis["command"]
    args = " ".join(command) if isinstance(command, list) else command
    assert "--appendonly yes" in args
    assert "--appendfsync everysec" in args
    assert "--maxmemory-policy noeviction" in args
    assert redis["volumes"] and redis["healthcheck"]


def test_compose_indexer_keeps_the_milvus_lite_file_on_a_volume() -> None:
    data = compose()
    indexer = data["services"]["indexer"]
    uri = indexer["environment"]["RAGLINE_MILVUS_URI"]
    default = re.fullmatch(r"\$\{RAGLINE_MILVUS_URI:-(.+)\}", uri)
    lite_file = default.group(1) if default else uri
    targets = {v.split(":")[1]: v.split(":")[0] for v in indexer["volumes"]}
    volume = targets[str(Path(lite_file).parent)]
    assert volume in data["volumes"]
    for name in set(STAGES) - {"indexer"}:
        assert "volumes" not in data["services"][name]


def test_compose_profiles_add_rabbitmq_and_milvus() -> None:
    services = compose()["services"]
    by_profile: dict[str, set[str]] = {}
    for name, service in services.items():
        for profile in service.get("profiles", []):
            by_profile.setdefault(profile, set()).add(name)
    assert by_profile.keys() == {"rabbitmq", "milvus"}
    assert "rabbitmq" in by_profile["rabbitmq"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3-management")
    assert {"milvus", "etcd", "minio"} <= by_profile["milvus"]
    assert services["milvus"]["image"].startswith("milvusdb/milvus")
    env = services["gateway"]["environment"]
    assert "rabbitmq" in env["RAGLINE_RABBITMQ_URL"]
    text = COMPOSE.read_text(encoding="utf-8")
    assert "RAGLINE_BROKER=rabbitmq" in text
    assert "RAGLINE_MILVUS_URI=http://milvus:19530" in text


# --- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuations joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, rest = (current + line).strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
        current = ""
    return instructions


def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    instructions = dockerfile_instructions()
    runs = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "RUN"]
    (torch_at,) = (i for i, args in runs if "torch==" in args)
    assert "--index-url" in instructions[torch_at][1]
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for kw, a in instructions if kw == "ARG" and "=" in a
    }
    assert args["TORCH_VERSION"].startswith("2.13")
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    (project_at,) = (i for i, a in runs if re.search(r"pip install (\S+ )*\.(\s|$)", a))
    assert torch_at < project_at
    # The sources are copied after torch, so editing them does not rebuild the torch layer.
    copies = [i for i, (kw, a) in enumerate(instructions) if kw == "COPY" and "services" in a]
    assert copies and all(torch_at < i < project_at for i in copies)


def test_dockerfile_runtime_is_offline_non_root_and_serves_the_gateway() -> None:
    instructions = dockerfile_instructions()
    env = {
        pair.split("=", 1)[0]: pair.split("=", 1)[1]
        for kw, args in instructions
        if kw == "ENV"
        for pair in args.split()
    }
    assert env["HF_HUB_OFFLINE"] == "1"
    last_stage = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    users = [args for kw, args in instructions[last_stage:] if kw == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    final = dict(instructions[last_stage:])
    assert final["ENTRYPOINT"] == '["ragline"]'
    assert final["CMD"] == '["serve", "gateway"]'
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv"} <= set(ignored)
