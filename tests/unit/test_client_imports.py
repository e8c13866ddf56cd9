"""ragline_client stands alone: of the server package it imports only the generated public protos
(ragline.v1), so it can ship without the server, torch and Milvus."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python" / "ragline_client"
PUBLIC_PROTOS = ("ragline.v1.ingest_service_pb2", "ragline.v1.job_pb2")


def test_the_client_imports_nothing_of_the_server_but_its_protos() -> None:
    sources = sorted(CLIENT.rglob("*.py"))
    assert len(sources) >= 8, sources
    for path in sources:
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                if name == "ragline" or name.startswith("ragline."):
                    assert name.startswith(PUBLIC_PROTOS), f"{path.name} imports {name}"
