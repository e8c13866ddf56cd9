"""Both Python clients behind one awaitable face, so each client test case is written once and run
against RaglineClient and AsyncRaglineClient alike.

A case awaits every call (``await client.ingest(...)``) and collects the iterators
(``await client.collect("watch", job_id)``). For the sync client each call runs in a worker thread:
its blocking gRPC call never holds up the event loop, which may be serving the very gateway it
calls (the in-process servers of the unit tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from ragline_client import AsyncRaglineClient, RaglineClient

FLAVOURS = ("sync", "async")


class AwaitedClient:
    """A RaglineClient or AsyncRaglineClient whose every method is awaited."""

    def __init__(self, client: RaglineClient | AsyncRaglineClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        method = getattr(self.client, name)
        if isinstance(self.client, AsyncRaglineClient):
            return method  # type: ignore[no-any-return]

        async def in_thread(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return in_thread

    async def collect(self, name: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Every item of the iterator method `name` (watch, iter_dead_letters) returns."""
        method = getattr(self.client, name)
        if isinstance(self.client, AsyncRaglineClient):
            return [item async for item in method(*args, **kwargs)]
        return await asyncio.to_thread(lambda: list(method(*args, **kwargs)))


@asynccontextmanager
async def connected(flavour: str, address: str, **options: Any) -> AsyncIterator[AwaitedClient]:
    """A client of `flavour` ("sync" or "async") for the gateway at `address`, closed after."""
    if flavour == "async":
        async with AsyncRaglineClient(address, **options) as client:
            yield AwaitedClient(client)
    else:
        with RaglineClient(address, **options) as sync_client:
            yield AwaitedClient(sync_client)
