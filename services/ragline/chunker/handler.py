"""The chunker's queue work: cut each document, record its chunk count, fan out embed tasks.

A chunk task refers to its document's bytes, which the job store keeps beside the job while it is
open (tasks queued by older gateways carry them inline, and are read as they are). Bytes that are
gone belong to a job that has ended: such a task, a late duplicate, is settled without work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from ragline.broker.base import Broker
from ragline.chunker.cutting import split_text
from ragline.chunker.parsers import extract_text
from ragline.chunker.splitter import Chunk, TokenSplitter
from ragline.errors import BrokerUnavailable, NotFound, PermanentTaskError, StoreUnavailable
from ragline.jobs.model import Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope
from ragline.stage.runner import Task
from ragline.telemetry import log_context
from ragline.v1 import queue_pb2

# Plain text and markdown up to this size are cut on the event loop (2-4 ms for 16 KiB), saving
# the hand-off to a worker thread and back (its wake-ups, and the GIL passed to and fro) per
# document; larger ones, and HTML and PDF (whose parsing a small file does not bound: a
# compressed PDF stream expands), go to a thread, so the loop keeps extending claims.
INLINE_CUT_BYTES = 16 * 1024
INLINE_CUT_TYPES = frozenset({"text/plain", "text/markdown"})
# The embed tasks a batch holds before its cut documents are sent (a large document is sent on
# its own once cut, as before): what the batching may add to the chunker's memory.
FLUSH_BYTES = 4 * 2**20


class ChunkHandler:
    stage = Stage.CHUNK

    def __init__(
        self,
        broker: Broker,
        jobs: JobStore,
        splitter: TokenSplitter,
        chunks_per_task: int,
    ) -> None:
        self._broker = broker
        self._jobs = jobs
        self._splitter = splitter
        self._chunks_per_task = chunks_per_task

    async def handle(self, tasks: Sequence[Task]) -> list[BaseException | None]:
        """Cuts each document in turn; the batch's chunk totals and embed tasks then go out
        together, one round trip each (every FLUSH_BYTES of tasks), not two per document."""
        outcomes: list[BaseException | None] = [None] * len(tasks)
        cut: list[_Cut] = []
        held = 0
        for i, task in enumerate(tasks):
            try:
                with log_context(
                    job_id=task.job_id,
                    document_id=task.envelope.chunk.document.document_id,
                    trace_id=task.trace.trace_id,
                ):
                    done = await self._chunk(i, task)
            except (BrokerUnavailable, StoreUnavailable):
                raise
            except Exception as exc:
                outcomes[i] = exc
                continue
            if done is None:
                continue
            cut.append(done)
            held += sum(map(len, done.bodies))
            if held >= FLUSH_BYTES:
                await self._send(cut, outcomes)
                cut, held = [], 0
        await self._send(cut, outcomes)
        return outcomes

    async def _send(self, cut: list[_Cut], outcomes: list[BaseException | None]) -> None:
        """Records the documents' chunk totals, then publishes their embed tasks: every total is
        on record before any of the tasks exists, so the indexer that writes a document's last
        chunk always knows it was the last. A publish refused for good is tried again one
        document at a time, so that only the document at fault fails."""
        if not cut:
            return
        await self._jobs.set_totals([(c.task.job_id, c.total) for c in cut])
        queue = envelope.queue_name(Stage.EMBED)
        try:
            await self._broker.publish(queue, [b for c in cut for b in c.bodies])
            return
        except (BrokerUnavailable, StoreUnavailable):
            raise
        except Exception as exc:
            if len(cut) == 1:
                outcomes[cut[0].position] = exc
                return
        for c in cut:
            try:
                await self._broker.publish(queue, c.bodies)
            except (BrokerUnavailable, StoreUnavailable):
                raise
            except Exception as exc:
                outcomes[c.position] = exc

    def _cut(self, task: Task, content: bytes) -> list[Chunk]:
        """Runs in a worker thread for a large document, which takes seconds to cut."""
        ct = task.envelope.chunk
        with task.trace.step("ragline.chunk.parse", {"ragline.content_type": ct.content_type}):
            text = extract_text(content, ct.content_type)
        with task.trace.step("ragline.chunk.split", {"ragline.chunk_size": ct.chunk_size}):
            chunks = split_text(
                self._splitter, text, ct.content_type, ct.chunk_size, ct.chunk_overlap
            )
        task.trace.set("ragline.chunks", len(chunks))
        return chunks

    async def _content(self, task: Task) -> bytes | None:
        """The document's bytes; None when the task's job has ended (nothing left to do)."""
        ct = task.envelope.chunk
        if not ct.content_in_store:
            return ct.content
        body = await self._jobs.document_body(task.job_id)
        if body is not None:
            return body
        try:
            job = await self._jobs.get(task.job_id)
        except NotFound:
            return None
        if job.state.is_terminal:
            return None
        raise PermanentTaskError(
            f"the document of job {task.job_id} is no longer in the job store (was it removed "
            "by hand, or did the job outlive RAGLINE_JOB_RETENTION_S?); ingest it again"
        )

    async def _chunk(self, position: int, task: Task) -> _Cut | None:
        """The document cut into its embed tasks; None when its job has ended."""
        content = await self._content(task)
        if content is None:
            return None
        small = len(content) <= INLINE_CUT_BYTES
        if small and task.envelope.chunk.content_type in INLINE_CUT_TYPES:
            chunks = self._cut(task, content)
        else:
            chunks = await asyncio.to_thread(self._cut, task, content)
        context = task.trace.carrier()
        bodies = [
            envelope.embed_task(
                task.envelope,
                (
                    queue_pb2.TextChunk(chunk_index=c.index, text=c.text, token_count=c.token_count)
                    for c in chunks[start : start + self._chunks_per_task]
                ),
                context,
            )
            for start in range(0, len(chunks), self._chunks_per_task)
        ]
        return _Cut(position, task, len(chunks), bodies)


@dataclass(frozen=True)
class _Cut:
    """A document cut, waiting to be sent: its task's place in the batch, the task, its chunk
    count and its embed tasks."""

    position: int
    task: Task
    total: int
    bodies: list[bytes]
