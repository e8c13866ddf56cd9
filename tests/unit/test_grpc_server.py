"""Serving: what a service does to its heap once it has started, and how it stops."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
import weakref
from collections.abc import Iterator

import grpc
import pytest
from grpc import aio

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


async def test_sigterm_exits_within_one_grace_when_loops_and_rpcs_both_hang(thawed: None) -> None:
    # A loop that ignores the stop request and an RPC that never answers: each may take the whole
    # grace, but side by side, not one after the other (which took twice the grace).
    grace_s = 2.0
    rpc_started = asyncio.Event()

    async def hang(request: bytes, context: aio.ServicerContext) -> bytes:
        rpc_started.set()
        await asyncio.sleep(3600)
        return b""

    def register(server: aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(hang)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("test.Hang", {"Hang": handler})]
        )

    server = GrpcServer("127.0.0.1:0", [register], "test")

    async def stubborn_loop() -> None:
        await asyncio.sleep(3600)

    service = asyncio.create_task(
        run_until_signalled(server, background=[stubborn_loop], grace_s=grace_s)
    )
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary("/test.Hang/Hang")(b"", timeout=60)
        await asyncio.wait_for(rpc_started.wait(), 30)
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)  # the service's own handler takes it
        await asyncio.wait_for(service, 30)
        took = time.monotonic() - started
        with pytest.raises(aio.AioRpcError):
            await call  # cut off at the grace, not answered
    assert grace_s * 0.9 <= took < grace_s * 1.5
