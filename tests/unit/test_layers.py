"""The layers of services/ragline (docs/architecture.md), checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2] / "services" / "ragline"
CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python" / "ragline_client"
STAGES = ("gateway", "chunker", "embedder", "indexer")
# Pure logic: unit-tested without I/O, so it imports no transport, broker, store or wire format.
DOMAIN = (
    "access/keys.py",
    "access/policy.py",
    "chunking_config.py",
    "config.py",
    "content_types.py",
    "errors.py",
    "faults.py",
    "ids.py",
    "limits.py",
    "model_info.py",
    "retry.py",
    "chunker/cutting.py",
    "chunker/parsers.py",
    "chunker/splitter.py",
    "embedder/batching.py",
    "embedder/pooling.py",
    "embedder/precision.py",
    "gateway/dead_letters.py",
    "gateway/validation.py",
    "indexer/keys.py",
    "indexer/versions.py",
    "jobs/doctor.py",
    "jobs/model.py",
)
TRANSPORT = (
    "grpc",
    "grpc_health",
    "redis",
    "aio_pika",
    "aiormq",
    "pymilvus",
    "prometheus_client",
    "ragline.v1",
    "ragline_client.v1",
)


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def modules() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if p.relative_to(ROOT).parts[0] != "v1"]


def package(path: Path) -> str:
    return path.relative_to(ROOT).parts[0] if len(path.relative_to(ROOT).parts) > 1 else ""


def reaches(names: set[str], prefix: str) -> bool:
    return any(n == prefix or n.startswith(prefix + ".") for n in names)


def test_the_layout_is_what_this_test_walks() -> None:
    assert {package(p) for p in modules()} >= {*STAGES, "broker", "jobs", "stage", "cli", ""}
    assert all((ROOT / m).is_file() for m in DOMAIN)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_never_imports_another(stage: str) -> None:
    others = [s for s in STAGES if s != stage]
    wrong = {
        str(p.relative_to(ROOT)): sorted(n for n in imported(p) if reaches({n}, "ragline." + o))
        for p in (ROOT / stage).rglob("*.py")
        for o in others
        if reaches(imported(p), "ragline." + o)
    }
    assert not wrong, f"shared knowledge belongs in a core module: {wrong}"


def test_core_modules_import_no_stage_and_no_cli() -> None:
    wrong = {}
    for path in modules():
        if package(path) in (*STAGES, "cli"):
            continue
        bad = [n for n in imported(path) for s in (*STAGES, "cli") if reaches({n}, "ragline." + s)]
        if bad:
            wrong[str(path.relative_to(ROOT))] = bad
    assert not wrong, f"the core must not reach up into a stage or the CLI: {wrong}"


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_logic_imports_no_transport(module: str) -> None:
    names = imported(ROOT / module)
    assert not [t for t in TRANSPORT if reaches(names, t)]


def test_the_client_imports_nothing_of_the_server() -> None:
    """ragline-client installs without the server (torch, Milvus...): the server depends on the
    client, never the reverse."""
    wrong = {
        str(p.relative_to(CLIENT)): sorted(n for n in imported(p) if reaches({n}, "ragline"))
        for p in CLIENT.rglob("*.py")
        if reaches(imported(p), "ragline")
    }
    assert not wrong, f"the client must not import the server package: {wrong}"
