"""How an accepted document's chunk task leaves the gateway: atomically with its job, on either
broker.

The job store's create script records each new job and, in the same script, writes its chunk task
to the Outbox's `target`, so no gateway crash can leave a job without its task:

- DirectOutbox (Redis Streams broker): the target is the chunk stream itself, on the job store's
  Redis (one RAGLINE_REDIS_URL serves both). The script's XADD queues the task; nothing is left
  to send.
- RelayOutbox (RabbitMQ): Redis cannot write to RabbitMQ, so the target is an outbox in Redis
  (ragline.jobs.outbox), each entry leased to the gateway that wrote it. That gateway then
  publishes its own entries at once, with publisher confirms, and removes them; the Ingest answer
  comes after the confirms, as before. Every gateway also runs a relay loop that publishes
  entries whose lease ran out: those of a gateway that died between the script and its publish.
  A late or repeated publish only repeats a chunk task, which carries its job id and document
  version and which every stage handles idempotently.

The gateway's intake sees only this interface; it never knows which broker it has.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ragline.broker.base import Broker
from ragline.config import Settings
from ragline.errors import StoreUnavailable, TransientError
from ragline.faults import Faults
from ragline.jobs.model import Job, Stage
from ragline.jobs.outbox import OutboxStore
from ragline.jobs.store import JobStore, TaskTarget
from ragline.stage.envelope import decode, queue_name, with_document_version

log = logging.getLogger(__name__)

# Most expired entries one relay pass publishes.
RELAY_BATCH = 256


class Outbox(abc.ABC):
    """Where new jobs' chunk tasks are written with the jobs, and how they go on from there."""

    @property
    @abc.abstractmethod
    def target(self) -> TaskTarget:
        """Where the job store's create script writes each new job's task."""

    async def send(self, new: Sequence[tuple[Job, bytes]]) -> None:
        """Publishes what the create script left for this gateway to publish: each new job with
        its task as given to the script (without its version). Raises BrokerUnavailable when
        the broker does not take them."""
        return

    async def discard(self, job_ids: Sequence[str]) -> None:
        """Forgets the unsent tasks of jobs that are being abandoned."""
        return

    def background(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        """Loops the gateway runs beside its server for as long as it serves."""
        return []

    def stop(self) -> None:
        """Asks the background loops to end."""
        return


class DirectOutbox(Outbox):
    """The task is queued by the create script itself (XADD onto the chunk stream)."""

    def __init__(self, stream_key: str) -> None:
        self._target = TaskTarget(stream=stream_key)

    @property
    def target(self) -> TaskTarget:
        return self._target


class RelayOutbox(Outbox):
    """An outbox in Redis, published to the broker by the gateway that wrote each entry and, once
    its lease runs out, by the relay of any gateway."""

    def __init__(
        self,
        broker: Broker,
        store: OutboxStore,
        queue: str,
        *,
        poll_s: float | None = None,
    ) -> None:
        self._broker = broker
        self._store = store
        self._queue = queue
        # A few looks per lease: an orphaned entry goes out at most about a quarter lease late.
        self._poll_s = poll_s if poll_s is not None else min(1.0, store.lease_s / 4)
        self._stopping = asyncio.Event()

    @property
    def target(self) -> TaskTarget:
        return self._store.target

    async def send(self, new: Sequence[tuple[Job, bytes]]) -> None:
        if not new:
            return
        await self._broker.publish(
            self._queue, [with_document_version(body, job.document_version) for job, body in new]
        )
        try:
            await self._store.remove([job.job_id for job, _ in new])
        except StoreUnavailable:
            # Published all the same: the entries go out once more after their lease (a
            # duplicate task, which the stages absorb), so the caller still gets its answer.
            log.warning(
                "published %d chunk task(s) but could not clear them from the outbox; "
                "they will be published again after the lease",
                len(new),
                exc_info=True,
            )

    async def discard(self, job_ids: Sequence[str]) -> None:
        await self._store.remove(job_ids)

    async def relay_expired(self) -> int:
        """Publishes (confirmed) and removes entries whose lease ran out; returns how many."""
        claimed = await self._store.claim_expired(RELAY_BATCH)
        if not claimed:
            return 0
        await self._broker.publish(self._queue, [body for _, body in claimed])
        await self._store.remove([job_id for job_id, _ in claimed])
        log.warning(
            "published %d chunk task(s) from the outbox whose writer did not publish them "
            "within the lease (it died or lost the broker)",
            len(claimed),
        )
        return len(claimed)

    async def run(self) -> None:
        """Relays expired entries until stop(); rides out broker and Redis outages."""
        while not self._stopping.is_set():
            try:
                moved = await self.relay_expired()
            except TransientError as exc:
                log.warning("the outbox relay will try again: %s", exc)
                moved = 0
            if moved < RELAY_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._poll_s)

    def background(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        return [self.run]

    def stop(self) -> None:
        self._stopping.set()


class FaultyOutbox(Outbox):
    """`inner` with the gateway's deliberate faults (RAGLINE_FAULTS, see ragline.faults) around
    its send: `gateway:crash_after_commit:MARKER` ends the gateway after the create script has
    recorded the new jobs and before their tasks are sent on or the call is answered. Applied in
    the gateway's main only when the setting is on, so the intake carries no fault code."""

    def __init__(self, inner: Outbox, faults: Faults, jobs: JobStore | None = None) -> None:
        """`jobs` reads the documents the tasks refer to (without it, a task's own content)."""
        self._inner = inner
        self._faults = faults
        self._jobs = jobs

    @property
    def target(self) -> TaskTarget:
        return self._inner.target

    async def send(self, new: Sequence[tuple[Job, bytes]]) -> None:
        documents = [
            (await self._document(job) or decode(task).chunk.content).decode("utf-8", "replace")
            for job, task in new
        ]
        self._faults.crash_after_commit(documents)
        await self._inner.send(new)

    async def _document(self, job: Job) -> bytes | None:
        return None if self._jobs is None else await self._jobs.document_body(job.job_id)

    async def discard(self, job_ids: Sequence[str]) -> None:
        await self._inner.discard(job_ids)

    def background(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        return self._inner.background()

    def stop(self) -> None:
        self._inner.stop()


def make_outbox(
    broker: Broker, jobs: JobStore, *, namespace: str, queue: str, lease_s: float
) -> Outbox:
    """The outbox that fits `broker`: direct when its queues are streams on the job store's
    Redis, relayed otherwise."""
    stream = broker.redis_stream(queue)
    if stream is not None:
        return DirectOutbox(stream)
    store = OutboxStore(jobs.redis, namespace=namespace, queue=queue, lease_s=lease_s)
    return RelayOutbox(broker, store, queue)


def chunk_outbox(broker: Broker, jobs: JobStore, settings: Settings) -> Outbox:
    """The deployment's outbox for chunk tasks: where the gateways' intake and the repair of
    stuck jobs (the gateways' and `ragline doctor --repair`'s) put them."""
    return make_outbox(
        broker,
        jobs,
        namespace=settings.namespace,
        queue=queue_name(Stage.CHUNK),
        lease_s=settings.outbox_lease_s,
    )
