"""The documents kept beside their jobs, against a real Redis: the create script stores each one
once and queues a small task that refers to it; every script that ends a job drops it (a failed
job's expires with its record); the chunker reads it, and settles a task whose job has ended
without work; and the repair script publishes a lost task again only while the job is unchanged,
failing the job (with the reason) when it cannot help."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis

from ragline.broker.base import DeadLetter, Delivery
from ragline.broker.redis_streams import RedisStreamsBroker
from ragline.chunker.handler import ChunkHandler
from ragline.chunker.splitter import TokenSplitter
from ragline.errors import PermanentTaskError
from ragline.faults import Faults
from ragline.gateway.intake import CHUNK_QUEUE, Accepted, Intake
from ragline.jobs.doctor import Reason, StageFacts, diagnose
from ragline.jobs.model import Job, JobState, Stage
from ragline.jobs.repair import Examination, Repairer
from ragline.jobs.store import JobStore, TaskTarget
from ragline.jobs.versions import VersionStore
from ragline.model_info import resolve_model
from ragline.stage import envelope
from ragline.stage.faulty import FaultyHandler
from ragline.stage.runner import Task
from ragline.v1 import queue_pb2
from ragline_client.v1 import job_pb2
from tests.conftest import REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60), pytest.mark.xdist_group(__name__)]

RETENTION_S = 300
DOCUMENT = ("A paragraph about rivers. " * 400).encode()
LIVE = StageFacts(consumers=1, dead_letters={})


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> JobStore:
    return JobStore(redis_client, namespace=namespace, retention_s=RETENTION_S)


@pytest.fixture
async def broker(redis_client: aioredis.Redis, namespace: str) -> AsyncIterator[RedisStreamsBroker]:
    b = RedisStreamsBroker(REDIS_URL, namespace=namespace, client=redis_client)
    await b.connect()
    yield b


def accepted(document_id: str, content: bytes = DOCUMENT) -> Accepted:
    return Accepted(
        tenant="default",
        document_id=document_id,
        request_id="",
        content=content,
        content_type="text/plain",
        chunk_size=64,
        chunk_overlap=8,
        embedding_model="sentence-transformers/all-MiniLM-L6-v2",
        metadata=job_pb2.DocumentMetadata(uploaded_by="tests"),
    )


async def ingest(
    store: JobStore, broker: RedisStreamsBroker, *docs: Accepted
) -> list[tuple[Job, Task]]:
    """Accepts the documents and takes their chunk tasks off the stream (unacked)."""
    jobs = await Intake(broker, store, 1000).accept(list(docs))
    deliveries = await broker.read(CHUNK_QUEUE, 100, 0.5)
    assert len(deliveries) == len(jobs)
    return [
        (job, Task(d, envelope.decode(d.body))) for job, d in zip(jobs, deliveries, strict=True)
    ]


async def kept(redis_client: aioredis.Redis, store: JobStore, job_id: str) -> int:
    """The content key's TTL in seconds (-2: gone)."""
    return int(await redis_client.ttl(store.keys.content(job_id)))


async def test_the_document_is_kept_once_beside_its_job_and_the_task_refers_to_it(
    store: JobStore, broker: RedisStreamsBroker, redis_client: aioredis.Redis
) -> None:
    ((job, task),) = await ingest(store, broker, accepted("rivers"))
    chunk = task.envelope.chunk
    assert chunk.content_in_store and chunk.content == b""
    assert chunk.document.document_version == job.document_version == 1
    # The queue entry is small; the bytes are in the store, once, with the task to republish.
    assert len(task.delivery.body) < 300 < len(DOCUMENT)
    assert await store.document_body(job.job_id) == DOCUMENT
    assert await store.kept_tasks([job.job_id, "nobody"]) == {job.job_id: task.delivery.body}
    # A backstop expiry of the jobs' retention.
    assert 0 < await kept(redis_client, store, job.job_id) <= RETENTION_S


async def test_ending_a_job_drops_its_document_and_failing_one_lets_it_expire_with_the_record(
    store: JobStore, broker: RedisStreamsBroker, redis_client: aioredis.Redis
) -> None:
    made = await ingest(
        store, broker, accepted("done"), accepted("cancelled"), accepted("failed"), accepted("gone")
    )
    done, cancelled, failed, gone = (job for job, _ in made)
    versions = VersionStore.beside(store)
    await store.set_total(done.job_id, 1)
    await versions.complete_version(done.job_id, "default", "done", done.document_version)
    assert (await store.get(done.job_id)).state is JobState.COMPLETED
    assert await kept(redis_client, store, done.job_id) == -2

    assert await store.move(cancelled.job_id, JobState.CANCELLED)
    assert await kept(redis_client, store, cancelled.job_id) == -2

    # A failed job's chunk dead letter may be requeued: its document stays as long as its record.
    await store.fail(failed.job_id, Stage.CHUNK, "bad", 1)
    assert await store.document_body(failed.job_id) == DOCUMENT
    record_ttl = await redis_client.ttl(store.keys.job(failed.job_id))
    assert 0 < await kept(redis_client, store, failed.job_id) <= record_ttl
    assert await store.reopen(failed.job_id)  # requeued: still there, with its backstop
    assert 0 < await kept(redis_client, store, failed.job_id) <= RETENTION_S
    await store.set_total(failed.job_id, 1)
    await versions.complete_version(failed.job_id, "default", "failed", failed.document_version)
    assert await kept(redis_client, store, failed.job_id) == -2

    # Deleted while in flight: the job ends cancelled when its last chunk lands, document gone.
    assert await versions.delete_document("default", "gone")
    await store.set_total(gone.job_id, 1)
    _, state = await versions.complete_version(
        gone.job_id, "default", "gone", gone.document_version
    )
    assert state is JobState.CANCELLED
    assert await kept(redis_client, store, gone.job_id) == -2


class RecordingBroker(RedisStreamsBroker):
    published: list[bytes]

    async def publish(self, queue: str, bodies: Sequence[bytes]) -> None:
        self.published = [*getattr(self, "published", []), *bodies]


@pytest.fixture(scope="module")
def splitter() -> TokenSplitter:
    model = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    return TokenSplitter(model.path / "tokenizer.json")


async def test_the_chunker_reads_the_kept_document_and_skips_a_task_whose_job_has_ended(
    store: JobStore,
    broker: RedisStreamsBroker,
    redis_client: aioredis.Redis,
    namespace: str,
    splitter: TokenSplitter,
) -> None:
    (live, live_task), (ended, ended_task), (lost, lost_task) = await ingest(
        store, broker, accepted("live"), accepted("ended"), accepted("lost")
    )
    out = RecordingBroker(REDIS_URL, namespace=namespace, client=redis_client)
    handler = ChunkHandler(out, store, splitter, chunks_per_task=1000)
    assert await handler.handle([live_task]) == [None]
    total = (await store.get(live.job_id)).progress.chunks_total
    assert total > 5 and len(out.published) == 1

    # A late repeat of a cancelled job's task: settled, no work.
    assert await store.move(ended.job_id, JobState.CANCELLED)
    assert await handler.handle([ended_task]) == [None]
    assert (await store.get(ended.job_id)).progress.chunks_total == 0
    assert len(out.published) == 1

    # An open job whose document vanished (removed by hand): a clear, permanent error.
    await redis_client.delete(store.keys.content(lost.job_id))
    (error,) = await handler.handle([lost_task])
    assert isinstance(error, PermanentTaskError)
    assert "no longer in the job store" in str(error) and "ingest it again" in str(error)

    # A task queued by an older gateway carries its bytes: still chunked, the same way.
    inline = queue_pb2.TaskEnvelope()
    inline.CopyFrom(live_task.envelope)
    inline.chunk.content_in_store = False
    inline.chunk.content = DOCUMENT
    await redis_client.delete(store.keys.content(live.job_id))
    assert await handler.handle([Task(Delivery("chunk", b"", "1"), inline)]) == [None]
    assert len(out.published) == 2
    again = queue_pb2.TaskEnvelope.FromString(out.published[1]).embed
    first = queue_pb2.TaskEnvelope.FromString(out.published[0]).embed
    assert [c.text for c in again.chunks] == [c.text for c in first.chunks]


async def stuck(store: JobStore, redis_client: aioredis.Redis, job: Job, ago_s: float) -> None:
    """Makes the job look unchanged for `ago_s`."""
    await redis_client.zadd(store.keys.open_jobs, {job.job_id: time.time() - ago_s}, xx=True)
    await redis_client.hset(store.keys.job(job.job_id), "update_time", time.time() - ago_s)


def examination(
    jobs: list[Job], kept_tasks: dict[str, bytes], cutoff: float, max_repairs: int = 3
) -> Examination:
    facts = {stage: LIVE for stage in Stage}
    return Examination(
        [diagnose(j, facts, max_repairs=max_repairs, kept=j.job_id in kept_tasks) for j in jobs],
        len(jobs),
        kept_tasks,
        cutoff,
    )


async def test_a_missing_task_is_published_again_once_per_stuck_spell_then_the_job_fails(
    store: JobStore, broker: RedisStreamsBroker, redis_client: aioredis.Redis
) -> None:
    ((job, task),) = await ingest(store, broker, accepted("lost"))
    await broker.ack([task.delivery])  # the broker "loses" it
    target = TaskTarget(stream=broker.stream_key(CHUNK_QUEUE))
    repairer = Repairer(store, broker, target, stuck_after_s=10, max_repairs=2)
    for attempt in (1, 2):
        await stuck(store, redis_client, job, 20)
        found = examination(
            [await store.get(job.job_id)], await store.kept_tasks([job.job_id]), time.time() - 10
        )
        assert found.diagnoses[0].reason is Reason.TASK_MISSING
        (done,) = await repairer.repair(found)
        assert done.outcome == "republished", done.message
        assert f"repair {attempt} of at most 2" in done.message
        # The same sweep's finding again (another gateway, a moment later): left alone, since
        # the repair touched the job.
        (again,) = await repairer.repair(found)
        assert again.outcome == "left"
        (delivery,) = await broker.read(CHUNK_QUEUE, 10, 0.5)
        fresh = envelope.decode(delivery.body)
        # The kept task, as a fresh message: a new id, attempt 1, the same document and version.
        assert fresh.message_id != task.envelope.message_id and fresh.attempt == 1
        assert fresh.chunk == task.envelope.chunk
        await broker.ack([delivery])
        record = await store.get(job.job_id)
        assert record.repairs == attempt and not record.is_stuck(time.time(), 10)

    await stuck(store, redis_client, job, 20)
    found = examination(
        [await store.get(job.job_id)], await store.kept_tasks([job.job_id]), time.time() - 10, 2
    )
    assert "RAGLINE_MAX_REPAIRS" in found.diagnoses[0].advice
    (spent,) = await repairer.repair(found)
    assert spent.outcome == "failed"
    failed = await store.get(job.job_id)
    assert failed.state is JobState.FAILED and failed.last_error_stage is Stage.CHUNK
    assert "lost again after it was published again 2 time(s)" in failed.last_error
    assert "ingest the document again" in failed.last_error
    assert await broker.depth(CHUNK_QUEUE) == 0


async def test_a_job_from_before_documents_were_kept_is_failed_not_left(
    store: JobStore, broker: RedisStreamsBroker, redis_client: aioredis.Redis
) -> None:
    old, _ = await store.create("old")  # a job without its document in the store
    await stuck(store, redis_client, old, 20)
    job = await store.get(old.job_id)
    found = examination([job], await store.kept_tasks([job.job_id]), time.time() - 10)
    assert "not kept in the job store" in found.diagnoses[0].advice
    target = TaskTarget(stream=broker.stream_key(CHUNK_QUEUE))
    (done,) = await Repairer(store, broker, target, stuck_after_s=10).repair(found)
    assert done.outcome == "failed"
    failed = await store.get(job.job_id)
    assert failed.state is JobState.FAILED
    assert "cannot be published again: ingest the document again" in failed.last_error
    assert await broker.depth(CHUNK_QUEUE) == 0


async def test_a_task_waiting_in_the_outbox_is_late_not_lost(
    store: JobStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    outbox = TaskTarget(
        outbox=f"{namespace}:outbox:chunk", leases=f"{namespace}:outbox:chunk:leases", lease_s=30
    )
    body = envelope.chunk_task(
        "job-1",
        queue_pb2.DocumentRef(document_id="d"),
        content_type="text/plain",
        chunk_size=64,
        chunk_overlap=0,
        embedding_model="m",
    )
    ((job, _),) = await store.create_many(
        [("d", "")], job_ids=["job-1"], tasks=[body], contents=[b"text"], target=outbox
    )
    await stuck(store, redis_client, job, 20)
    result = await store.republish(
        job.job_id, body, unchanged_since=time.time() - 10, max_repairs=3, target=outbox
    )
    assert (result.outcome, result.why) == ("left", "in the outbox")
    # Published and cleared, then lost: the repair writes it back to the outbox, due at once.
    await redis_client.delete(outbox.outbox, outbox.leases)
    result = await store.republish(
        job.job_id, body, unchanged_since=time.time() - 10, max_repairs=3, target=outbox
    )
    assert (result.outcome, result.repairs) == ("republished", 1)
    assert await redis_client.hget(outbox.outbox, job.job_id) == body
    lease = await redis_client.zscore(outbox.leases, job.job_id)
    assert lease is not None and lease <= time.time() + 1


async def test_fault_markers_are_found_in_the_kept_document(
    store: JobStore, broker: RedisStreamsBroker
) -> None:
    # Drills (RAGLINE_FAULTS) look for their marker in the document, wherever it is kept.
    class Inner:
        stage = Stage.CHUNK

        async def handle(self, tasks: Sequence[Task]) -> list[BaseException | None]:
            return [None] * len(tasks)

    ((_, bad), (_, good)) = await ingest(
        store, broker, accepted("bad", b"a BADDOC here"), accepted("good", b"fine")
    )
    handler = FaultyHandler(Inner(), Faults("chunk:permanent:BADDOC", "chunk"), store)
    first, second = await handler.handle([bad, good])
    assert isinstance(first, PermanentTaskError) and second is None


async def test_a_sweep_repairs_a_lost_task_but_leaves_a_dead_lettered_one(
    store: JobStore, broker: RedisStreamsBroker, redis_client: aioredis.Redis, namespace: str
) -> None:
    # A worker of its own connection, so that consumer_count sees a live reader.
    worker = RedisStreamsBroker(REDIS_URL, namespace=namespace)
    await worker.connect()
    try:
        await Intake(broker, store, 1000).accept([accepted("letter"), accepted("lost")])
        letter_delivery, lost_delivery = await worker.read(CHUNK_QUEUE, 10, 0.5)
        letter = envelope.decode(letter_delivery.body)
        now = time.time()
        await worker.dead_letter(
            letter_delivery,
            DeadLetter("chunk", letter_delivery.body, letter.job_id, "E", "bad", 1, now, now),
        )
        await worker.ack([lost_delivery])  # lost: no queue holds it any more
        lost_id = envelope.decode(lost_delivery.body).job_id
        for job_id in (letter.job_id, lost_id):
            await stuck(store, redis_client, await store.get(job_id), 20)
        target = TaskTarget(stream=broker.stream_key(CHUNK_QUEUE))
        repairer = Repairer(store, worker, target, stuck_after_s=10)
        (done,) = await repairer.sweep()
        assert (done.diagnosis.job.job_id, done.outcome) == (lost_id, "republished")
        assert await repairer.sweep() == []  # touched: not stuck again yet
        assert (await store.get(letter.job_id)).repairs == 0
        (again,) = await worker.read(CHUNK_QUEUE, 10, 0.5)
        assert envelope.decode(again.body).job_id == lost_id
    finally:
        await worker.close()


class OrderRecordingBroker(RedisStreamsBroker):
    """Records each publish with the chunk totals on record when it came, and refuses for good
    any publish that holds a task of `refused` (a document id)."""

    def __init__(self, *args: object, store: JobStore, refused: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.store, self.refused = store, refused
        self.calls: list[tuple[list[str], dict[str, int]]] = []

    async def publish(self, queue: str, bodies: Sequence[bytes]) -> None:
        docs = [queue_pb2.TaskEnvelope.FromString(b).embed.document.document_id for b in bodies]
        if self.refused in docs:
            raise PermanentTaskError(f"a task of {self.refused} is refused")
        jobs = {queue_pb2.TaskEnvelope.FromString(b).job_id for b in bodies}
        totals = {j: (await self.store.get(j)).progress.chunks_total for j in jobs}
        self.calls.append((docs, totals))


async def test_a_batch_records_every_total_before_one_publish_and_a_refusal_fails_one_document(
    store: JobStore,
    broker: RedisStreamsBroker,
    redis_client: aioredis.Redis,
    namespace: str,
    splitter: TokenSplitter,
) -> None:
    ingested = await ingest(store, broker, accepted("one"), accepted("two"), accepted("three"))
    out = OrderRecordingBroker(
        REDIS_URL, namespace=namespace, client=redis_client, store=store, refused="none"
    )
    handler = ChunkHandler(out, store, splitter, chunks_per_task=4)
    assert await handler.handle([t for _, t in ingested]) == [None, None, None]
    ((docs, totals),) = out.calls  # one publish for the batch, every total already recorded
    assert sorted(set(docs)) == ["one", "three", "two"] and len(docs) > 3
    assert all(total > 5 for total in totals.values()) and len(totals) == 3

    # One document's tasks refused for good: tried again one document at a time, only it fails.
    out.calls, out.refused = [], "two"
    outcomes = await handler.handle([t for _, t in ingested])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], PermanentTaskError)
    assert [sorted(set(d)) for d, _ in out.calls] == [["one"], ["three"]]
