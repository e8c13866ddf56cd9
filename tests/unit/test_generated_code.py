"""The committed generated code is exactly what the protos generate (`make protos`): the public
API's in the client distribution, the services' own in the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services/ragline/v1", "clients/python/ragline_client/v1")


def generated(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".py", ".pyi")}


def test_regenerating_the_protos_leaves_no_diff(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_protos.sh")],
        env={**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    for package in PACKAGES:
        fresh = generated(tmp_path / Path(*Path(package).parts[-2:]))
        committed = generated(ROOT / package)
        assert sorted(fresh) == sorted(committed), package
        stale = [n for n in fresh if fresh[n] != committed[n]]
        assert not stale, f"generated code in {package} is stale ({stale}): run `make protos`"


def test_the_public_api_ships_in_the_client_and_only_there() -> None:
    client = generated(ROOT / "clients/python/ragline_client/v1")
    server = generated(ROOT / "services/ragline/v1")
    assert {"ingest_service_pb2.py", "job_pb2.py"} <= set(client)
    assert not set(client) & set(server) - {"__init__.py"}
