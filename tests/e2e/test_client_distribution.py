"""ragline-client installs alone: a fresh venv gets the client, and nothing of the server, and
talks to a live gateway from there."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import uuid
import venv
from pathlib import Path

import pytest

from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(__name__)]

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("ragline", "torch", "transformers", "pymilvus", "milvus_lite", "redis", "numpy")

# Run inside the fresh venv: which modules it can import, the client's declared dependencies,
# then a round trip through the live gateway (ingest, wait, search).
PROBE = textwrap.dedent(
    """
    import importlib.metadata, importlib.util, json, sys
    from ragline_client import RaglineClient

    gateway, marker, *names = sys.argv[1:]
    found = {name: importlib.util.find_spec(name) is not None for name in names}
    with RaglineClient(gateway, timeout=60) as client:
        job = client.ingest(f"standalone {marker}", document_id=marker)
        done = client.wait(job.job_id, timeout=120)
        hits = client.search(f"standalone {marker}", top_k=3, document_ids=[marker])
    print(json.dumps({
        "found": found,
        "requires": importlib.metadata.requires("ragline-client"),
        "state": done.state.value,
        "hits": [h.document_id for h in hits],
    }))
    """
)


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with `pip install clients/python` (a built wheel, not an editable link), built
    from a copy so that the build leaves nothing in the checkout."""
    home = tmp_path_factory.mktemp("client-venv")
    source = shutil.copytree(
        ROOT / "clients" / "python",
        tmp_path_factory.mktemp("client-source") / "python",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    done = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            source,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return python


@pytest.mark.parametrize("stack", ["redis"], indirect=True)
def test_the_client_installs_alone_and_talks_to_a_gateway(client_venv: Path, stack: Stack) -> None:
    marker = f"standalone-{uuid.uuid4().hex[:8]}"
    ran = subprocess.run(
        [client_venv, "-c", PROBE, stack.gateway, marker, *SERVER_ONLY],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=client_venv.parent,  # not the checkout: nothing of it on sys.path
    )
    assert ran.returncode == 0, ran.stderr
    probe = json.loads(ran.stdout)
    assert probe["found"] == dict.fromkeys(SERVER_ONLY, False), "server packages came along"
    requires = sorted(r.split(">")[0].split("=")[0].split("<")[0] for r in probe["requires"])
    assert requires == ["googleapis-common-protos", "grpcio", "protobuf"]
    assert probe["state"] == "completed"
    assert probe["hits"] == [marker]


def test_the_wheel_ships_the_generated_messages_and_their_types(client_venv: Path) -> None:
    site = subprocess.run(
        [
            client_venv,
            "-c",
            "import ragline_client, os; print(os.path.dirname(ragline_client.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=client_venv.parent,
    ).stdout.strip()
    package = Path(site)
    assert package.parent.name == "site-packages", "the client must be installed, not linked"
    for name in (
        "py.typed",
        "v1/ingest_service_pb2.py",
        "v1/ingest_service_pb2.pyi",
        "v1/job_pb2.py",
    ):
        assert (package / name).is_file(), name
