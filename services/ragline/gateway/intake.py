"""Accepting documents: record a job per document and queue it for chunking, nothing more.

Intake is atomic: one Redis script records the jobs, their idempotency keys, their documents'
bytes (kept beside each job until it ends; the chunk task refers to them) and their chunk
tasks together (see ragline.gateway.outbox): on Redis Streams the script queues the tasks itself;
on RabbitMQ it leaves them in an outbox that this gateway publishes at once and every gateway's
relay publishes once their lease runs out. A gateway that dies at any point therefore leaves
either nothing or a job whose task is (or will be) queued, and a retry with the same request id
answers with that job.

The gateway never waits for the work. The only waits on the way are round trips, whatever the
number of documents: one create script (plus, on RabbitMQ, one confirmed publish and one Redis
call clearing the outbox), and now and then one to read the queue's depth (backpressure), which
is cached for a fraction of a second. Concurrent calls share those round trips (see
Intake.accept).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ragline.broker.base import Broker
from ragline.config import Settings
from ragline.errors import (
    BrokerUnavailable,
    ConfigurationError,
    ResourceExhausted,
    StoreUnavailable,
)
from ragline.gateway.outbox import DirectOutbox, Outbox
from ragline.ids import new_id
from ragline.jobs.model import Job, Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope
from ragline.v1 import queue_pb2
from ragline_client.v1 import job_pb2

log = logging.getLogger(__name__)

CHUNK_QUEUE = envelope.queue_name(Stage.CHUNK)

# How long a read of the chunk queue's depth is trusted. See Intake._reserve for what it allows.
DEPTH_CACHE_S = 0.2
# The delay a refused Ingest is told to wait (RetryInfo) while the queue is full: long enough
# for the workers to take some of the backlog, short beside a client's patience.
QUEUE_FULL_RETRY_S = 1.0
# Most documents committed together (a single call larger than this is committed alone).
MAX_GROUP_DOCUMENTS = 1024
# Least time between the starts of two group commits under load; see Intake._pace.
COMMIT_INTERVAL_S = Settings.commit_interval_ms / 1000


@dataclass(frozen=True)
class Accepted:
    """A document ready to queue: what validation settled plus what travels with it."""

    tenant: str  # the caller's, from its key: the job, the document and its chunks are its
    document_id: str
    request_id: str
    content: bytes
    content_type: str
    chunk_size: int
    chunk_overlap: int
    embedding_model: str
    metadata: job_pb2.DocumentMetadata
    # The W3C context of the document's accept span, carried by its chunk task; empty when
    # tracing is off.
    trace_context: Mapping[str, str] = field(default_factory=dict)


class Intake:
    def __init__(
        self,
        broker: Broker,
        jobs: JobStore,
        max_queue_depth: int,
        *,
        outbox: Outbox | None = None,
        depth_cache_s: float = DEPTH_CACHE_S,
        commit_interval_s: float = COMMIT_INTERVAL_S,
    ) -> None:
        """`outbox` defaults to queueing straight onto `broker`'s Redis stream (Redis Streams
        only; see ragline.gateway.outbox.make_outbox for the choice by broker)."""
        self._broker = broker
        self._jobs = jobs
        if outbox is None:
            stream = broker.redis_stream(CHUNK_QUEUE)
            if stream is None:
                raise ConfigurationError("this broker needs a RelayOutbox; use make_outbox()")
            outbox = DirectOutbox(stream)
        self._outbox = outbox
        self._max_queue_depth = max_queue_depth
        self._depth_cache_s = depth_cache_s
        # The depth estimate is `_base + (_reserved - _mark)`: the depth last read plus what was
        # in flight when that read began, plus every document reserved since it began.
        self._base = 0
        self._mark = 0
        self._read_time = -float("inf")
        self._reading: asyncio.Future[None] | None = None
        self._reserved = 0  # documents reserved since start-up
        self._in_flight = 0  # documents reserved and not yet committed (or refused)
        self._waiting: deque[tuple[Sequence[Accepted], asyncio.Future[list[Job]]]] = deque()
        self._committer: asyncio.Future[None] | None = None
        self._commit_interval_s = commit_interval_s
        self._last_commit = -float("inf")  # when the last group commit started (monotonic)

    async def accept(self, docs: Sequence[Accepted]) -> list[Job]:
        """Records and queues `docs`; returns one job per document, in order.

        A request id seen before returns its first job and queues nothing (its task was queued
        with it, or waits in the outbox for a relay). RESOURCE_EXHAUSTED when the chunk queue is
        full; UNAVAILABLE (and no job left behind as accepted) when the broker does not take the
        messages.

        Calls that arrive while a commit is under way are committed together in the next one
        (group commit): one create script (and one send) for all of them, so a burst of single
        Ingests costs about as many Redis round trips as one IngestBatch. A lone call is committed
        at once; under load, commits are paced (see _pace) so that each carries more documents.
        """
        if not docs:
            return []
        await self._reserve(len(docs))
        done: asyncio.Future[list[Job]] = asyncio.get_running_loop().create_future()
        self._waiting.append((docs, done))
        if self._committer is None:
            self._committer = asyncio.ensure_future(self._commit_waiting())
        return await done

    async def _commit_waiting(self) -> None:
        """Commits the waiting calls, a group at a time, until none is left."""
        group: list[tuple[Sequence[Accepted], asyncio.Future[list[Job]]]] = []
        try:
            while self._waiting:
                await self._pace()
                group, count = [], 0
                while self._waiting and (
                    not group or count + len(self._waiting[0][0]) <= MAX_GROUP_DOCUMENTS
                ):
                    group.append(self._waiting.popleft())
                    count += len(group[-1][0])
                try:
                    jobs = await self._commit([d for docs, _ in group for d in docs])
                except Exception as exc:
                    for _, done in group:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    start = 0
                    for docs, done in group:
                        if not done.done():  # its caller may have gone (cancelled)
                            done.set_result(jobs[start : start + len(docs)])
                        start += len(docs)
                finally:
                    self._in_flight -= count
                group = []
        except asyncio.CancelledError:
            for _, done in [*group, *self._waiting]:
                done.cancel()
            self._waiting.clear()
            raise
        finally:
            self._committer = None

    async def _pace(self) -> None:
        """Waits until `commit_interval_s` after the previous commit began, unless a full group
        is already waiting.

        Each commit costs a Redis round trip or more, and on the gateway's one core a round trip
        costs as much CPU as several documents' share of a larger commit (redis-py's machinery,
        the event loop's wake-ups). Committing as soon as the last commit ends makes groups of one
        or two documents under load; spacing commits a few milliseconds apart lets them gather a
        dozen, which raised single-document Ingest from ~2,000 to ~3,000 calls/s on 2 cores
        (see `make bench`). A call after a quiet spell waits for nothing; under load the wait
        is at most the interval, small beside the queueing the load itself causes.
        """
        wait = self._last_commit + self._commit_interval_s - time.monotonic()
        if wait > 0 and sum(len(docs) for docs, _ in self._waiting) < MAX_GROUP_DOCUMENTS:
            await asyncio.sleep(wait)
        self._last_commit = time.monotonic()

    async def _commit(self, docs: Sequence[Accepted]) -> list[Job]:
        """One create script for `docs`, which records each new job with its chunk task, then the
        outbox's send; fails what it made if the send fails."""
        # The tasks name their jobs, so the job ids are made here, before the script.
        job_ids = [new_id() for _ in docs]
        tasks = [self._chunk_task(job_id, doc) for job_id, doc in zip(job_ids, docs, strict=True)]
        made = await self._jobs.create_many(
            [(d.document_id, d.request_id) for d in docs],
            job_ids=job_ids,
            tenants=[d.tenant for d in docs],
            tasks=tasks,
            contents=[d.content for d in docs],
            target=self._outbox.target,
        )
        new = [
            (job, task, doc)
            for (job, created), task, doc in zip(made, tasks, docs, strict=True)
            if created
        ]
        if new:
            try:
                await self._outbox.send([(job, task) for job, task, _ in new])
            except BrokerUnavailable:
                await self._abandon([job for job, _, _ in new])
                raise
        return [job for job, _ in made]

    async def _abandon(self, jobs: list[Job]) -> None:
        """Fails jobs whose tasks could not be queued and forgets their request ids, so that the
        client's retry makes new ones; then drops their unsent tasks.

        In that order: a crash between the two leaves a failed job whose task a relay still
        publishes later (a failed job's tasks still run, so it completes), never an accepted job
        with no task behind it.
        """
        try:
            await self._jobs.abandon(
                jobs, Stage.CHUNK, "the document could not be queued: broker unavailable"
            )
            await self._outbox.discard([job.job_id for job in jobs])
        except StoreUnavailable:
            # Redis is down for the store too: the caller gets UNAVAILABLE for the publish, and
            # whatever is left in the outbox is published once the relay reaches the broker.
            log.exception(
                "could not mark %d unqueued job(s) failed or drop their outbox entries", len(jobs)
            )

    async def _reserve(self, count: int) -> None:
        """Counts `count` documents into the chunk queue's depth, or raises RESOURCE_EXHAUSTED.

        The depth is read from the broker at most once per `depth_cache_s` (one read shared by
        every call waiting on it); in between, this process adds what it accepts itself. Within
        one gateway process the limit therefore holds (the estimate only errs high: documents
        that turned out to be repeats, or that the workers took meanwhile, count until the next
        read). What it does not see is what other gateway processes accept: with others accepting
        D documents/s, the queue may overshoot the limit by about D * depth_cache_s (e.g. 1,000
        documents at 5,000/s and 0.2 s), small beside the default limit of 100,000.
        """
        if time.monotonic() - self._read_time >= self._depth_cache_s:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read_depth())
                # Every waiter may have been cancelled: never leave a failure unretrieved.
                self._reading.add_done_callback(_retrieve)
            await asyncio.shield(self._reading)
        depth = self._base + self._reserved - self._mark
        if depth + count > self._max_queue_depth:
            raise ResourceExhausted(
                f"the ingest queue is full ({depth} documents waiting, limit "
                f"{self._max_queue_depth}); retry later with backoff",
                retry_after_s=QUEUE_FULL_RETRY_S,
            )
        self._reserved += count
        self._in_flight += count

    async def _read_depth(self) -> None:
        mark, in_flight = self._reserved, self._in_flight
        try:
            depth = await self._broker.depth(CHUNK_QUEUE)
        finally:
            self._reading = None
        self._base, self._mark = depth + in_flight, mark
        self._read_time = time.monotonic()

    @staticmethod
    def _chunk_task(job_id: str, doc: Accepted) -> bytes:
        """The document's chunk task but for its version, which the create script adds
        (envelope.with_document_version). It refers to the document's bytes, which the same
        script keeps beside the job."""
        return envelope.chunk_task(
            job_id,
            queue_pb2.DocumentRef(
                document_id=doc.document_id, metadata=doc.metadata, tenant=doc.tenant
            ),
            content_type=doc.content_type,
            chunk_size=doc.chunk_size,
            chunk_overlap=doc.chunk_overlap,
            embedding_model=doc.embedding_model,
            trace_context=doc.trace_context,
        )


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
