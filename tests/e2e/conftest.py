"""One whole stack per session for the end-to-end tests; each test uses its own document ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragline_client import RaglineClient
from tests.conftest import REDIS_URL
from tests.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"), REDIS_URL)
    try:
        s.start()
    except Exception:
        s.stop_all()
        raise
    yield s
    s.stop_all()


@pytest.fixture
def client(stack: Stack) -> Iterator[RaglineClient]:
    with RaglineClient(stack.gateway, timeout=60) as c:
        yield c


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
