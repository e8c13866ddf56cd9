"""The committed generated code is exactly what the protos generate (`make protos`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "services" / "ragline" / "v1"


def test_regenerating_the_protos_leaves_no_diff(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_protos.sh")],
        env={**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = tmp_path / "ragline" / "v1"
    names = sorted(p.name for p in fresh.iterdir() if p.suffix in (".py", ".pyi"))
    assert names == sorted(p.name for p in COMMITTED.iterdir() if p.suffix in (".py", ".pyi"))
    stale = [n for n in names if (fresh / n).read_bytes() != (COMMITTED / n).read_bytes()]
    assert not stale, f"generated code is stale ({stale}): run `make protos` and commit"
