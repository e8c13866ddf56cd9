"""Accepting documents: record a job per document and queue it for chunking, nothing more.

The gateway never waits for the work. The only waits on the way are Redis round trips: one to
check the queue's depth (backpressure), one script per job, one pipelined publish.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ragline.broker.base import Broker
from ragline.errors import BrokerUnavailable, ResourceExhausted
from ragline.jobs.model import Job, Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope
from ragline.v1 import job_pb2

log = logging.getLogger(__name__)

CHUNK_QUEUE = envelope.queue_name(Stage.CHUNK)


@dataclass(frozen=True)
class Accepted:
    """A document ready to queue: what validation settled plus what travels with it."""

    document_id: str
    request_id: str
    content: bytes
    content_type: str
    chunk_size: int
    chunk_overlap: int
    embedding_model: str
    metadata: job_pb2.DocumentMetadata


class Intake:
    def __init__(self, broker: Broker, jobs: JobStore, max_queue_depth: int) -> None:
        self._broker = broker
        self._jobs = jobs
        self._max_queue_depth = max_queue_depth

    async def accept(self, docs: Sequence[Accepted]) -> list[Job]:
        """Records and queues `docs`; returns one job per document, in order.

        A request id seen before returns its first job and queues nothing. RESOURCE_EXHAUSTED when
        the chunk queue is full; UNAVAILABLE (and no job left behind as accepted) when the broker
        does not take the messages.
        """
        depth = await self._broker.depth(CHUNK_QUEUE)
        if depth + len(docs) > self._max_queue_depth:
            raise ResourceExhausted(
                f"the ingest queue is full ({depth} documents waiting, limit "
                f"{self._max_queue_depth}); retry later with backoff"
            )
        jobs: list[Job] = []
        new: list[tuple[Job, Accepted]] = []
        for doc in docs:
            job, created = await self._jobs.create(doc.document_id, request_id=doc.request_id)
            jobs.append(job)
            if created:
                new.append((job, doc))
        bodies = [self._chunk_task(job, doc) for job, doc in new]
        try:
            await self._broker.publish(CHUNK_QUEUE, bodies)
        except BrokerUnavailable:
            for job, doc in new:
                await self._jobs.fail(
                    job.job_id,
                    Stage.CHUNK,
                    "the document could not be queued: broker unavailable",
                    1,
                )
                await self._jobs.forget_request(doc.request_id)
            raise
        return jobs

    @staticmethod
    def _chunk_task(job: Job, doc: Accepted) -> bytes:
        env = envelope.new_envelope(job.job_id)
        task = env.chunk
        task.document.document_id = doc.document_id
        task.document.document_version = job.document_version
        task.document.metadata.CopyFrom(doc.metadata)
        task.content = doc.content
        task.content_type = doc.content_type
        task.chunk_size = doc.chunk_size
        task.chunk_overlap = doc.chunk_overlap
        task.embedding_model = doc.embedding_model
        return env.SerializeToString()
