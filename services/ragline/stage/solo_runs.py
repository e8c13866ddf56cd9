"""The stage runner's crash-loop counter: how often a redelivered message has run alone without
an answer. Kept in Redis, since the process that ran it may be the one that died."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from ragline.redis_client import answered

# How long a counter outlives the last run it counted.
SOLO_RUN_TTL_S = 7 * 24 * 3600


class SoloRuns:
    """Counts runs of suspect messages on their own, by message id. Raises StoreUnavailable when
    Redis does not answer."""

    def __init__(self, client: aioredis.Redis, *, namespace: str) -> None:
        self._r = client
        self._ns = namespace

    def _key(self, message_id: str) -> str:
        return f"{self._ns}:solo:{message_id}"

    async def start(self, message_id: str) -> int:
        """Counts one more run of the message on its own; returns how many there were.

        A message that keeps crashing its worker when it runs alone is the culprit; its innocent
        neighbours of a crashed batch run alone once, succeed, and are cleared.
        """
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.incr(self._key(message_id))
            pipe.expire(self._key(message_id), SOLO_RUN_TTL_S)
            count, _ = await self._call(pipe.execute())
        return int(count)

    async def end(self, message_id: str) -> None:
        """Forgets the message's runs: it finished."""
        await self._call(self._r.delete(self._key(message_id)))

    async def _call(self, awaitable: Any) -> Any:
        return await answered(awaitable, "the crash-loop counter")
