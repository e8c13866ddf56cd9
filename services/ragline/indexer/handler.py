"""The indexer's queue work: one batched upsert for the whole batch, then progress, then, for
each version whose last chunk landed, the switch to it and the removal of what it replaces."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from ragline import metrics
from ragline.convert import metadata_to_dict
from ragline.errors import StoreUnavailable
from ragline.indexer.vector_store import ChunkRow, VectorStore
from ragline.indexer.versions import Cleanup, cleanup_after
from ragline.jobs.model import JobState, Stage
from ragline.jobs.store import JobStore
from ragline.jobs.versions import VersionStore
from ragline.stage.runner import Task
from ragline.tenants import DEFAULT_TENANT, tenant_or_default
from ragline.tracing import batch_step

log = logging.getLogger(__name__)


class IndexHandler:
    stage = Stage.INDEX

    def __init__(
        self,
        jobs: JobStore,
        versions: VersionStore,
        store: VectorStore,
        tenant_label: Callable[[str], str] = lambda _: DEFAULT_TENANT,
    ) -> None:
        self._jobs = jobs
        self._versions = versions
        self._store = store
        # The `tenant` label of a tenant's metrics (ragline.metrics.TenantLabels).
        self._tenant_label = tenant_label

    async def handle(self, tasks: Sequence[Task]) -> list[BaseException | None]:
        rows: list[ChunkRow] = []
        for task in tasks:
            index = task.envelope.index
            metadata = metadata_to_dict(index.document.metadata)
            rows.extend(
                ChunkRow(
                    document_id=index.document.document_id,
                    document_version=index.document.document_version,
                    chunk_index=c.chunk_index,
                    text=c.text,
                    vector=c.vector,
                    metadata=metadata,
                    job_id=task.job_id,
                    tenant=tenant_or_default(index.document.tenant),
                )
                for c in index.chunks
            )
        with batch_step(
            [t.trace for t in tasks], "ragline.index.upsert", {"ragline.rows": len(rows)}
        ):
            await asyncio.to_thread(self._store.upsert, rows)
        marks = await self._jobs.mark_many(
            "indexed",
            [
                (t.job_id, [c.chunk_index for c in t.envelope.index.chunks], t.attempt)
                for t in tasks
            ],
        )
        completed: list[str] = []
        for task, marked in zip(tasks, marks, strict=True):
            doc = task.envelope.index.document
            if marked is None:
                # The job's record is gone (expired or never made): nobody waits for it.
                continue
            if marked.state == JobState.CANCELLED:
                # Cancelled while this batch was in flight: take back what was just written.
                await asyncio.to_thread(
                    self._store.discard,
                    tenant_or_default(doc.tenant),
                    doc.document_id,
                    only_version=doc.document_version,
                )
            elif marked.all_done:
                with task.trace.step(
                    "ragline.index.version_switch",
                    {"ragline.document_version": doc.document_version},
                ):
                    ended = await self.finish_version(task)
                # Not when a redelivered last message finds the job completed already.
                if ended == JobState.COMPLETED and marked.state != JobState.COMPLETED:
                    completed.append(task.job_id)
        metrics.INDEXED_CHUNKS.inc(len(rows))
        if completed:
            await self._count_completed(completed)
        return [None] * len(tasks)

    async def _count_completed(self, job_ids: list[str]) -> None:
        """Records the jobs' time from accepted to completed: one read for the batch, and a
        metric never fails the work (it is done), so a store that does not answer skips it."""
        try:
            jobs = await self._jobs.get_many(job_ids)
        except StoreUnavailable as exc:
            log.warning("indexer: job latencies not recorded: %s", exc)
            return
        for job in jobs:
            if job is not None and job.create_time > 0:
                metrics.JOB_SECONDS.labels(self._tenant_label(job.tenant)).observe(
                    max(0.0, (job.finish_time or time.time()) - job.create_time)
                )

    async def finish_version(self, task: Task) -> JobState:
        """Makes the job's version live (unless newer or deleted), ends the job, and removes the
        chunks the version replaces. Idempotent: a redelivered last message repeats it harmlessly.
        Returns the job's state.
        """
        doc = task.envelope.index.document
        tenant = tenant_or_default(doc.tenant)
        versions, state = await self._versions.complete_version(
            task.job_id, tenant, doc.document_id, doc.document_version
        )
        if state == JobState.CANCELLED:
            cleanup = Cleanup(below_version=None, only_version=doc.document_version, deleted=True)
        else:
            cleanup = cleanup_after(doc.document_version, versions.live, versions.floor)
        if cleanup.below_version is None and cleanup.only_version is None:
            return state
        await asyncio.to_thread(
            self._store.discard,
            tenant,
            doc.document_id,
            below_version=cleanup.below_version,
            only_version=cleanup.only_version,
        )
        return state
