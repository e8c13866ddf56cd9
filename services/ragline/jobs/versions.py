"""Document versions on Redis: which version of each document is searchable (live), which were
voided by a delete, and the switch that makes a finished version live. Used by the indexer (the
switch, search's live filter, delete) and the gateway (GetDocument).

Every accepted ingest gives its document the next version (the job store's create script counts
them in the document's `seq`); the indexer writes a version's chunks beside the live one's and,
when the last lands, `complete_version` makes it live unless a newer one is, in the same script
that ends its job. `delete_document` raises the floor: no version at or below it goes live.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ragline.errors import NotFound
from ragline.jobs.keys import Keys
from ragline.jobs.model import ALLOWED_FROM, JobState
from ragline.jobs.store import JobStore
from ragline.redis_client import answered, text
from ragline.redis_scripts import lua_script


@dataclass(frozen=True)
class DocumentVersions:
    seq: int
    live: int
    floor: int


class VersionStore:
    """Every method raises StoreUnavailable when Redis does not answer."""

    def __init__(self, client: aioredis.Redis, *, keys: Keys, retention_s: int) -> None:
        self._r = client
        self._keys = keys
        # The switch ends the job: finished jobs are kept this long, as the job store keeps them.
        self._retention_s = retention_s
        self._complete = client.register_script(lua_script("jobs", "complete_version"))
        self._delete = client.register_script(lua_script("jobs", "delete_document"))

    @classmethod
    def beside(cls, jobs: JobStore) -> VersionStore:
        """The version store on a job store's Redis connection, namespace and retention."""
        return cls(jobs.redis, keys=jobs.keys, retention_s=jobs.retention_s)

    async def complete_version(
        self, job_id: str, tenant: str, document_id: str, version: int
    ) -> tuple[DocumentVersions, JobState]:
        """Once every chunk of a job's version is indexed: makes the version live if it is the
        newest and not deleted, and ends the job (COMPLETED, or CANCELLED when the document was
        deleted meanwhile), atomically. A cancelled job's version never goes live.

        Returns the document's versions afterwards and the job's state.
        """
        k = self._keys
        live, floor, state, seq = await self._call(
            self._complete(
                keys=[
                    k.doc(tenant, document_id),
                    k.job(job_id),
                    k.events(job_id),
                    *k.bitmaps(job_id),
                    k.open_jobs,
                    k.content(job_id),
                ],
                args=[
                    version,
                    time.time(),
                    self._retention_s,
                    job_id,
                    *sorted(s.value for s in ALLOWED_FROM[JobState.COMPLETED]),
                ],
            )
        )
        if int(live) == -1:
            raise NotFound(f"job {job_id!r} does not exist")
        return DocumentVersions(int(seq), int(live), int(floor)), JobState(text(state))

    async def document_versions(self, tenant: str, document_id: str) -> DocumentVersions | None:
        raw = await self._call(self._r.hgetall(self._keys.doc(tenant, document_id)))
        if not raw:
            return None
        return DocumentVersions(
            seq=int(raw.get(b"seq", 0)),
            live=int(raw.get(b"live", 0)),
            floor=int(raw.get(b"floor", 0)),
        )

    async def live_versions(self, tenant: str, document_ids: Iterable[str]) -> dict[str, int]:
        """The searchable version of each of a tenant's documents (0 when none)."""
        ids = list(dict.fromkeys(document_ids))
        async with self._r.pipeline(transaction=False) as pipe:
            for d in ids:
                pipe.hget(self._keys.doc(tenant, d), "live")
            rows = await self._call(pipe.execute())
        return {d: int(v or 0) for d, v in zip(ids, rows, strict=True)}

    async def delete_document(self, tenant: str, document_id: str) -> bool:
        """Voids every version of a tenant's document given so far. False when it is unknown or
        deleted."""
        done = await self._call(self._delete(keys=[self._keys.doc(tenant, document_id)], args=[]))
        return bool(int(done))

    async def _call(self, awaitable: Any) -> Any:
        return await answered(awaitable, "the version store")
