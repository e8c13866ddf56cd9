"""Serving: what a service does to its heap once it has started."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from ragline.grpc_server import GrpcServer, freeze_startup_objects, run_until_signalled

pytestmark = pytest.mark.unit


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def thawed() -> Iterator[None]:
    """Gives the test process's objects back to the collector afterwards."""
    yield
    gc.unfreeze()


def test_start_up_garbage_is_freed_and_live_objects_frozen(thawed: None) -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    garbage = weakref.ref(a)
    del a, b
    live = _Node()

    assert freeze_startup_objects() > 0
    assert garbage() is None
    assert gc.get_freeze_count() > 0
    assert not any(o is live for o in gc.get_objects())  # out of every generation the GC walks


async def test_a_service_freezes_its_start_up_objects_before_it_reports_serving(
    thawed: None,
) -> None:
    gc.unfreeze()
    server = GrpcServer("127.0.0.1:0", [], "test")
    seen: list[int] = []

    async def first_loop() -> None:
        # Background loops start once the server reports SERVING; ending one stops the service.
        seen.append(gc.get_freeze_count())

    await asyncio.wait_for(run_until_signalled(server, background=[first_loop], grace_s=1), 30)
    assert seen and seen[0] > 0
