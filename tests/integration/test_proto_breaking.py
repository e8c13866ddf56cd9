"""scripts/proto_breaking.sh (run by `make lint`) refuses a proto change that breaks generated
clients, and lets a compatible one through, in a throw-away git repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The protos, buf.yaml and the script, in two commits: buf breaking needs a previous one."""
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copy(ROOT / "buf.yaml", tmp_path)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "proto_breaking.sh", tmp_path / "scripts")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "first")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "second")
    return tmp_path


def check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/proto_breaking.sh"], cwd=repo, capture_output=True, text=True, timeout=300
    )


def test_a_removed_field_is_refused_and_an_added_one_passes(repo: Path) -> None:
    job = repo / "protos" / "ragline" / "v1" / "ingest_service.proto"
    original = job.read_text()
    assert "  int32 top_k = 2;\n" in original
    job.write_text(original.replace("  int32 top_k = 2;\n", ""))
    refused = check(repo)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "top_k" in refused.stdout + refused.stderr
    assert "break compatibility" in refused.stderr

    job.write_text(
        original.replace("  int32 top_k = 2;\n", "  int32 top_k = 2;\n  bool fast = 99;\n")
    )
    passed = check(repo)
    assert passed.returncode == 0, passed.stdout + passed.stderr
