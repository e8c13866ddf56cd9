"""Accepting documents against a real Redis: the job store's batched create and the gateway's
intake (one create_many, one publish, a cached queue depth, group commit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis

from ragline.broker.redis_streams import RedisStreamsBroker
from ragline.errors import BrokerUnavailable, ResourceExhausted
from ragline.gateway.intake import CHUNK_QUEUE, MAX_GROUP_DOCUMENTS, Accepted, Intake
from ragline.jobs.model import Job, JobState, Stage
from ragline.jobs.store import JobStore
from ragline.stage.envelope import decode
from ragline.v1 import job_pb2
from tests.conftest import REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> JobStore:
    return JobStore(redis_client, namespace=namespace)


@pytest.fixture
async def broker(redis_client: aioredis.Redis, namespace: str) -> AsyncIterator[RedisStreamsBroker]:
    b = RedisStreamsBroker(REDIS_URL, namespace=namespace, client=redis_client)
    await b.connect()
    yield b  # redis_client's fixture closes the connection and deletes the keys


class DownBroker(RedisStreamsBroker):
    """The real broker, except that publishing fails as if Redis had gone away."""

    async def publish(self, queue: str, bodies: Sequence[bytes]) -> None:
        raise BrokerUnavailable(f"could not publish to {queue}: connection refused")


class CountingStore(JobStore):
    """The real job store, counting its create_many calls (one per group commit)."""

    commits = 0

    async def create_many(self, items: Sequence[tuple[str, str]]) -> list[tuple[Job, bool]]:
        self.commits += 1
        return await super().create_many(items)


@pytest.fixture
def counting(redis_client: aioredis.Redis, namespace: str) -> CountingStore:
    return CountingStore(redis_client, namespace=namespace)


def doc(document_id: str, request_id: str = "") -> Accepted:
    return Accepted(
        document_id=document_id,
        request_id=request_id,
        content=b"some text",
        content_type="text/plain",
        chunk_size=128,
        chunk_overlap=16,
        embedding_model="m",
        metadata=job_pb2.DocumentMetadata(uploaded_by="tests"),
    )


# -- create_many -------------------------------------------------------------------------------


async def test_create_many_gives_distinct_jobs_with_consecutive_versions(store: JobStore) -> None:
    made = await store.create_many([("doc-a", ""), ("doc-a", ""), ("doc-b", ""), ("doc-a", "")])
    assert all(created for _, created in made)
    jobs = [job for job, _ in made]
    assert len({j.job_id for j in jobs}) == 4
    assert [j.document_version for j in jobs] == [1, 2, 1, 3]
    assert all(j.state is JobState.ACCEPTED for j in jobs)
    # What create_many built without reading back is what the store holds.
    assert await store.get_many([j.job_id for j in jobs]) == jobs
    versions = await store.document_versions("doc-a")
    assert versions is not None and versions.seq == 3


async def test_a_repeated_request_id_returns_the_first_job(store: JobStore) -> None:
    made = await store.create_many([("doc", "req-1"), ("doc", "req-1"), ("doc", "req-2")])
    (first, c1), (again, c2), (other, c3) = made
    assert (c1, c2, c3) == (True, False, True)
    assert again == first
    assert other.document_version == 2
    # Across batches, and through the single create, too.
    later = await store.create_many([("doc", "req-2"), ("doc", "req-1"), ("doc", "")])
    assert [created for _, created in later] == [False, False, True]
    assert later[0][0] == other
    assert later[1][0] == first
    assert later[2][0].document_version == 3
    single, created = await store.create("doc", request_id="req-1")
    assert not created and single == first


async def test_create_many_of_nothing_is_nothing(store: JobStore) -> None:
    assert await store.create_many([]) == []


async def test_create_many_survives_a_flushed_script_cache(
    store: JobStore, redis_client: aioredis.Redis
) -> None:
    await store.create("doc")
    await redis_client.script_flush()
    made = await store.create_many([("doc", ""), ("doc", "r")])
    assert [j.document_version for j, _ in made] == [2, 3]


# -- intake ------------------------------------------------------------------------------------


async def test_accept_queues_one_task_per_new_job(
    store: JobStore, broker: RedisStreamsBroker
) -> None:
    intake = Intake(broker, store, max_queue_depth=100)
    jobs = await intake.accept([doc("a", "r1"), doc("a", "r1"), doc("b")])
    assert jobs[0] == jobs[1]
    assert await broker.depth(CHUNK_QUEUE) == 2
    again = await intake.accept([doc("a", "r1")])
    assert again == [jobs[0]]
    assert await broker.depth(CHUNK_QUEUE) == 2
    tasks = [decode(d.body) for d in await broker.read(CHUNK_QUEUE, 10, 0.1)]
    assert {(t.job_id, t.chunk.document.document_version) for t in tasks} == {
        (jobs[0].job_id, 1),
        (jobs[2].job_id, 1),
    }


async def test_concurrent_accepts_are_committed_together_and_each_gets_its_jobs(
    store: JobStore, broker: RedisStreamsBroker
) -> None:
    intake = Intake(broker, store, max_queue_depth=1000)
    results = await asyncio.gather(
        *(intake.accept([doc(f"d{i}", f"r{i}"), doc(f"d{i}")]) for i in range(20))
    )
    for i, jobs in enumerate(results):
        assert [j.document_id for j in jobs] == [f"d{i}", f"d{i}"]
        assert [j.document_version for j in jobs] == [1, 2]
        assert jobs[0].request_id == f"r{i}"
    assert await broker.depth(CHUNK_QUEUE) == 40


async def test_a_lone_call_is_committed_at_once_and_calls_under_load_wait_for_the_next_commit(
    counting: CountingStore, broker: RedisStreamsBroker
) -> None:
    intake = Intake(broker, counting, max_queue_depth=1000, commit_interval_s=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    # Nothing committed before: no wait (were it paced, this would take the whole second).
    await asyncio.wait_for(intake.accept([doc("lone")]), 0.8)
    # Right after a commit, calls wait for the interval and are committed together.
    results = await asyncio.gather(*(intake.accept([doc(f"d{i}")]) for i in range(10)))
    assert loop.time() - start >= 1.0
    assert counting.commits == 2
    assert [jobs[0].document_id for jobs in results] == [f"d{i}" for i in range(10)]
    assert await broker.depth(CHUNK_QUEUE) == 11


async def test_a_full_group_is_committed_without_waiting_for_the_interval(
    counting: CountingStore, broker: RedisStreamsBroker
) -> None:
    intake = Intake(broker, counting, max_queue_depth=10_000, commit_interval_s=60.0)
    await intake.accept([doc("first")])
    full = [doc(f"d{i}") for i in range(MAX_GROUP_DOCUMENTS)]
    jobs = await asyncio.wait_for(intake.accept(full), 30)
    assert len(jobs) == MAX_GROUP_DOCUMENTS and counting.commits == 2
    assert await broker.depth(CHUNK_QUEUE) == MAX_GROUP_DOCUMENTS + 1


async def test_a_failed_publish_fails_the_new_jobs_and_forgets_their_request_ids(
    store: JobStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    down = DownBroker(REDIS_URL, namespace=namespace, client=redis_client)
    await down.connect()
    up = RedisStreamsBroker(REDIS_URL, namespace=namespace, client=redis_client)
    await up.connect()
    existing = (await Intake(up, store, 100).accept([doc("old", "r-old")]))[0]

    with pytest.raises(BrokerUnavailable):
        await Intake(down, store, 100).accept(
            [doc("x", "r-x"), doc("y", ""), doc("old", "r-old"), doc("x", "r-x2")]
        )
    seq = await store.document_versions("x")
    assert seq is not None and seq.seq == 2
    failed = [j for j in await store.get_many(await _job_ids(redis_client, namespace)) if j]
    new = [j for j in failed if j.job_id != existing.job_id]
    assert len(new) == 3
    for job in new:
        assert job.state is JobState.FAILED
        assert job.last_error_stage is Stage.CHUNK
        assert "could not be queued" in job.last_error
    # The job that existed before is untouched, and its request id still answers with it.
    assert (await store.get(existing.job_id)).state is JobState.ACCEPTED
    assert not await redis_client.exists(f"{namespace}:request:r-x", f"{namespace}:request:r-x2")
    assert await redis_client.exists(f"{namespace}:request:r-old")
    # A retry of the same request makes a new job, which gets queued.
    (retried,) = await Intake(up, store, 100).accept([doc("x", "r-x")])
    assert retried.state is JobState.ACCEPTED
    assert retried.job_id not in {j.job_id for j in new}
    assert await up.depth(CHUNK_QUEUE) == 2


async def test_the_cached_depth_still_refuses_a_full_queue(
    store: JobStore, broker: RedisStreamsBroker
) -> None:
    # A long cache: only what this intake accepts itself can tell it the queue filled up.
    intake = Intake(broker, store, max_queue_depth=5, depth_cache_s=60)
    await intake.accept([doc("a"), doc("b"), doc("c")])
    with pytest.raises(ResourceExhausted, match="queue is full"):
        await intake.accept([doc("d"), doc("e"), doc("f")])
    await intake.accept([doc("d"), doc("e")])
    with pytest.raises(ResourceExhausted):
        await intake.accept([doc("f")])
    assert await broker.depth(CHUNK_QUEUE) == 5


async def test_the_depth_is_read_again_once_the_cache_expires(
    store: JobStore, broker: RedisStreamsBroker
) -> None:
    intake = Intake(broker, store, max_queue_depth=5, depth_cache_s=0.05)
    await intake.accept([doc("a")])
    # Another gateway fills the queue; this one sees it once its cached depth is stale.
    await broker.publish(CHUNK_QUEUE, [b"x"] * 4)
    await asyncio.sleep(0.1)
    with pytest.raises(ResourceExhausted, match="5 documents waiting"):
        await intake.accept([doc("b")])
    # And the workers draining it is seen the same way.
    deliveries = await broker.read(CHUNK_QUEUE, 10, 0.1)
    await broker.ack(deliveries)
    await asyncio.sleep(0.1)
    await intake.accept([doc("b")])


async def _job_ids(client: aioredis.Redis, namespace: str) -> list[str]:
    keys = [k.decode() async for k in client.scan_iter(match=f"{namespace}:job:*", count=1000)]
    return [k.rsplit(":", 1)[1] for k in keys if k.count(":") == 2]
