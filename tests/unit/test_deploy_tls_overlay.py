"""Offline checks of the TLS overlay, deploy/k8s-tls: its JSON patches applied to the base
manifests (as kustomize would, for the add and remove operations it uses) leave every stage with
the Secret mounted where the settings point and probes that work with TLS."""

from __future__ import annotations

import copy
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from ragline.config import Settings
from ragline.tls import MUTUAL_TLS, TLS, server_mode
from tests.unit.test_deploy_files import SETTINGS_VARS, all_docs, containers, env_of

pytestmark = pytest.mark.unit

OVERLAY = Path(__file__).resolve().parents[2] / "deploy" / "k8s-tls"
KUSTOMIZATION = OVERLAY / "kustomization.yaml"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def apply(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add and remove, failing (KeyError, IndexError) where a path does not exist."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = op["path"].strip("/").split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif op["op"] == "add" and isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        elif op["op"] == "add":
            node[last] = op["value"]
        else:
            raise AssertionError(f"the overlay uses {op['op']}, which this test does not apply")
    return doc


def patched() -> list[dict[str, Any]]:
    """The base documents with the overlay's targeted JSON patches applied."""
    docs = all_docs()
    for patch in load(KUSTOMIZATION)["patches"]:
        target = patch.get("target")
        if target is None:
            continue  # a strategic merge patch, checked on its own below
        ops = load(OVERLAY / patch["path"])
        hits = 0
        for i, doc in enumerate(docs):
            if doc["kind"] == target["kind"] and re.fullmatch(
                target.get("name", ".*"), doc["metadata"]["name"]
            ):
                docs[i] = apply(doc, ops)
                hits += 1
        assert hits, f"{patch['path']} targets nothing"
    return docs


def test_the_overlay_builds_on_the_base_and_lists_every_patch() -> None:
    kustomization = load(KUSTOMIZATION)
    assert kustomization["resources"] == ["../k8s"]
    listed = {p["path"] for p in kustomization["patches"]}
    assert listed == {p.name for p in OVERLAY.glob("*.yaml")} - {KUSTOMIZATION.name}


def test_the_overlay_names_only_real_settings() -> None:
    for path in OVERLAY.glob("*.yaml"):
        named = set(re.findall(r"\bRAGLINE_[A-Z0-9_]+\b", path.read_text(encoding="utf-8")))
        assert named <= SETTINGS_VARS, (path.name, named - SETTINGS_VARS)


def test_stages_serve_mutual_tls_and_the_gateway_tls() -> None:
    data = load(OVERLAY / "configmap-tls.yaml")["data"]
    settings = Settings.from_env(data)  # the pairs the settings require are all there
    assert server_mode(settings) == MUTUAL_TLS
    assert settings.tls_ca_file and settings.tls_client_cert_file
    (gateway,) = load(OVERLAY / "gateway-client-ca.yaml")["spec"]["template"]["spec"]["containers"]
    assert server_mode(Settings.from_env({**data, **env_of(gateway)})) == TLS


def test_every_stage_mounts_the_secret_where_the_settings_point_and_probes_over_tcp() -> None:
    data = load(OVERLAY / "configmap-tls.yaml")["data"]
    folders = {str(PurePosixPath(v).parent) for k, v in data.items() if k.startswith("RAGLINE_TLS")}
    deployments = [d for d in patched() if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "gateway",
        "chunker",
        "embedder",
        "indexer",
    }
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        secrets = {v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName")}
        (container,) = containers(deployment)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert folders <= mounts.keys(), deployment["metadata"]["name"]
        assert {mounts[f] for f in folders} <= secrets
        port_names = {p["name"] for p in container["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert "grpc" not in container[probe], (deployment["metadata"]["name"], probe)
            assert container[probe]["tcpSocket"]["port"] in port_names
    indexer = next(d for d in deployments if d["metadata"]["name"] == "indexer")
    claims = [
        v for v in indexer["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v
    ]
    assert claims, "the indexer keeps its Milvus Lite volume"


def test_stage_services_no_longer_claim_cleartext_http2() -> None:
    for doc in patched():
        if doc["kind"] == "Service" and doc["metadata"]["name"] != "redis":
            assert all("appProtocol" not in p for p in doc["spec"]["ports"]), doc["metadata"]
