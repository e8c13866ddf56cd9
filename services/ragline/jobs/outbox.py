"""The intake outbox on Redis: chunk tasks recorded with their jobs, waiting to be published to a
broker that is not Redis (RabbitMQ).

Keys, under the deployment's namespace, for a queue `q`:
    {ns}:outbox:{q}          hash: job id -> the task body, ready to publish
    {ns}:outbox:{q}:leases   sorted set: job id -> when its lease runs out (Redis server time,
                             epoch seconds)

The job store's create script writes an entry beside its job, leased to the gateway that wrote
it (see TaskTarget). That gateway publishes it at once and removes it; any gateway's relay takes
an entry whose lease ran out (its writer died, or could not publish), leasing it anew while it
publishes. Leases are measured on the Redis server's clock, so gateways' clocks never matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from ragline.jobs.store import TaskTarget
from ragline.redis_client import answered, text
from ragline.redis_scripts import lua_script


class OutboxStore:
    """One queue's outbox. Every method raises StoreUnavailable when Redis does not answer."""

    def __init__(
        self, client: aioredis.Redis, *, namespace: str, queue: str, lease_s: float
    ) -> None:
        self._r = client
        self.key = f"{namespace}:outbox:{queue}"
        self.leases_key = f"{self.key}:leases"
        self.lease_s = lease_s
        self._claim = client.register_script(lua_script("jobs", "claim_expired"))

    @property
    def target(self) -> TaskTarget:
        """What the job store's create script needs to write entries here."""
        return TaskTarget(outbox=self.key, leases=self.leases_key, lease_s=self.lease_s)

    async def claim_expired(self, limit: int) -> list[tuple[str, bytes]]:
        """Up to `limit` (job id, body) entries whose lease ran out, now leased to the caller."""
        flat: Any = await self._call(
            self._claim(keys=[self.key, self.leases_key], args=[self.lease_s, limit])
        )
        return [(text(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def remove(self, job_ids: Sequence[str]) -> None:
        """Removes entries (published, or their jobs abandoned), in one transaction."""
        if not job_ids:
            return
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hdel(self.key, *job_ids)
            pipe.zrem(self.leases_key, *job_ids)
            await self._call(pipe.execute())

    async def pending(self) -> int:
        """How many entries wait to be published."""
        return int(await self._call(self._r.hlen(self.key)))

    async def _call(self, awaitable: Any) -> Any:
        return await answered(awaitable, "the intake outbox")
