"""One whole stack per broker per session for the end-to-end tests; each test uses its own
document ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ragline_client import RaglineClient
from tests.conftest import REDIS_URL
from tests.stack import Stack


@pytest.fixture(scope="session", params=["redis", "rabbitmq"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The whole stack on each broker in turn (Redis is the job store either way)."""
    s = Stack(tmp_path_factory.mktemp(f"stack-{request.param}"), REDIS_URL, broker=request.param)
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
