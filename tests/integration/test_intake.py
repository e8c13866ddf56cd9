"""Accepting documents against a real Redis and a real RabbitMQ: the job store's batched create
and the gateway's intake (one create script that also queues or outboxes the chunk tasks, a
cached queue depth, group commit), and the RabbitMQ outbox's relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from ragline.broker.rabbitmq import RabbitMQBroker
from ragline.broker.redis_streams import RedisStreamsBroker
from ragline.errors import BrokerUnavailable, ConfigurationError, ResourceExhausted
from ragline.gateway.intake import CHUNK_QUEUE, MAX_GROUP_DOCUMENTS, Accepted, Intake
from ragline.gateway.outbox import RelayOutbox, make_outbox
from ragline.jobs.model import Job, JobState, Stage
from ragline.jobs.outbox import OutboxStore
from ragline.jobs.store import JobStore, TaskTarget
from ragline.jobs.versions import VersionStore
from ragline.stage.envelope import decode, new_envelope, with_document_version
from ragline_client.v1 import job_pb2
from tests.conftest import REDIS_URL
from tests.stack import RABBITMQ_URL, delete_rabbitmq_queues

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def versions_of(store: JobStore) -> VersionStore:
    return VersionStore.beside(store)


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> JobStore:
    return JobStore(redis_client, namespace=namespace)


@pytest.fixture
async def broker(redis_client: aioredis.Redis, namespace: str) -> AsyncIterator[RedisStreamsBroker]:
    b = RedisStreamsBroker(REDIS_URL, namespace=namespace, client=redis_client)
    await b.connect()
    yield b  # redis_client's fixture closes the connection and deletes the keys


@pytest.fixture
async def rabbit(namespace: str) -> AsyncIterator[RabbitMQBroker]:
    b = RabbitMQBroker(RABBITMQ_URL, namespace=namespace)
    await b.connect()
    yield b
    await b.close()
    await delete_rabbitmq_queues(namespace, [CHUNK_QUEUE])


class DownRabbit(RabbitMQBroker):
    """The real broker, except that publishing fails as if RabbitMQ had gone away."""

    async def publish(self, queue: str, bodies: Sequence[bytes]) -> None:
        raise BrokerUnavailable(f"could not publish to {queue}: connection refused")


class CountingStore(JobStore):
    """The real job store, counting its create_many calls (one per group commit)."""

    commits = 0

    async def create_many(
        self, items: Sequence[tuple[str, str]], **options: Any
    ) -> list[tuple[Job, bool]]:
        self.commits += 1
        return await super().create_many(items, **options)


def relay_outbox(
    broker: RabbitMQBroker, store: JobStore, namespace: str, lease_s: float = 30.0
) -> RelayOutbox:
    outbox = make_outbox(broker, store, namespace=namespace, queue=CHUNK_QUEUE, lease_s=lease_s)
    assert isinstance(outbox, RelayOutbox)
    return outbox


async def read_all(broker: RabbitMQBroker | RedisStreamsBroker, wanted: int) -> list[Any]:
    """Reads the chunk queue until `wanted` tasks came (or 5 s passed); acks and decodes them."""
    got: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(got) < wanted and loop.time() < deadline:
        batch = await broker.read(CHUNK_QUEUE, 100, 0.2)
        await broker.ack(batch)
        got += [decode(d.body) for d in batch]
    return got


@pytest.fixture
def counting(redis_client: aioredis.Redis, namespace: str) -> CountingStore:
    return CountingStore(redis_client, namespace=namespace)


def doc(document_id: str, request_id: str = "", tenant: str = "default") -> Accepted:
    return Accepted(
        tenant=tenant,
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
    versions = await versions_of(store).document_versions("default", "doc-a")
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


async def test_the_create_script_queues_each_new_jobs_task_with_its_version(
    store: JobStore, broker: RedisStreamsBroker
) -> None:
    # The task is on the stream once the script returns: nothing is left for a dying gateway to do.
    bodies = {
        "a": new_envelope("job-a").SerializeToString(),
        "b": new_envelope("job-b").SerializeToString(),
    }
    made = await store.create_many(
        [("doc", "r"), ("doc", "r"), ("doc", "")],
        job_ids=["job-a", "job-x", "job-b"],
        tasks=[bodies["a"], b"never used", bodies["b"]],
        target=TaskTarget(stream=broker.stream_key(CHUNK_QUEUE)),
    )
    assert [(j.job_id, created) for j, created in made] == [
        ("job-a", True),
        ("job-a", False),
        ("job-b", True),
    ]
    deliveries = await broker.read(CHUNK_QUEUE, 10, 0.1)
    # Lua appended the version exactly as Python would have.
    assert [d.body for d in deliveries] == [
        with_document_version(bodies["a"], 1),
        with_document_version(bodies["b"], 2),
    ]
    assert [decode(d.body).chunk.document.document_version for d in deliveries] == [1, 2]


async def test_an_intake_without_a_stream_needs_an_outbox(store: JobStore) -> None:
    with pytest.raises(ConfigurationError, match="RelayOutbox"):
        Intake(RabbitMQBroker(RABBITMQ_URL), store, 100)


# -- intake on RabbitMQ: the outbox and its relay -----------------------------------------------


async def test_accept_publishes_its_own_outbox_entries_and_clears_them(
    store: JobStore, rabbit: RabbitMQBroker, namespace: str
) -> None:
    outbox = relay_outbox(rabbit, store, namespace)
    intake = Intake(rabbit, store, 100, outbox=outbox)
    jobs = await intake.accept([doc("a", "r1"), doc("a", "r1"), doc("b"), doc("a")])
    assert jobs[0] == jobs[1]
    assert await intake.accept([doc("a", "r1")]) == [jobs[0]]
    tasks = await read_all(rabbit, 3)
    assert sorted((t.job_id, t.chunk.document.document_version) for t in tasks) == sorted(
        [(jobs[0].job_id, 1), (jobs[2].job_id, 1), (jobs[3].job_id, 2)]
    )
    assert (
        await OutboxStore(store.redis, namespace=namespace, queue=CHUNK_QUEUE, lease_s=1).pending()
        == 0
    )
    # Published by the gateway itself: nothing is left for a relay.
    assert await outbox.relay_expired() == 0


async def test_a_failed_publish_fails_the_new_jobs_and_forgets_their_request_ids(
    store: JobStore, rabbit: RabbitMQBroker, redis_client: aioredis.Redis, namespace: str
) -> None:
    down = DownRabbit(RABBITMQ_URL, namespace=namespace)
    await down.connect()  # it answers, reads the depth, but takes no message
    up = Intake(rabbit, store, 100, outbox=relay_outbox(rabbit, store, namespace))
    existing = (await up.accept([doc("old", "r-old")]))[0]
    await read_all(rabbit, 1)

    with pytest.raises(BrokerUnavailable):
        await Intake(down, store, 100, outbox=relay_outbox(down, store, namespace)).accept(
            [doc("x", "r-x"), doc("y", ""), doc("old", "r-old"), doc("x", "r-x2")]
        )
    await down.close()
    seq = await versions_of(store).document_versions("default", "x")
    assert seq is not None and seq.seq == 2
    failed = [j for j in await store.get_many(await _job_ids(redis_client, namespace)) if j]
    new = [j for j in failed if j.job_id != existing.job_id]
    assert len(new) == 3
    for job in new:
        assert job.state is JobState.FAILED
        assert job.last_error_stage is Stage.CHUNK
        assert "could not be queued" in job.last_error
    # Their tasks left the outbox with them: no relay publishes a task of an abandoned job.
    assert not await redis_client.exists(f"{namespace}:outbox:{CHUNK_QUEUE}")
    # The job that existed before is untouched, and its request id still answers with it.
    assert (await store.get(existing.job_id)).state is JobState.ACCEPTED
    assert not await redis_client.exists(f"{namespace}:request:r-x", f"{namespace}:request:r-x2")
    assert await redis_client.exists(f"{namespace}:request:r-old")
    # A retry of the same request makes a new job, which gets queued.
    (retried,) = await up.accept([doc("x", "r-x")])
    assert retried.state is JobState.ACCEPTED
    assert retried.job_id not in {j.job_id for j in new}
    (task,) = await read_all(rabbit, 1)
    assert (task.job_id, task.chunk.document.document_version) == (retried.job_id, 3)


async def test_the_relay_publishes_what_a_dead_gateway_left_once_its_lease_runs_out(
    store: JobStore, rabbit: RabbitMQBroker, namespace: str
) -> None:
    # A lease long enough that the retry below cannot outlast it on a busy machine (0.5 s did).
    outbox = relay_outbox(rabbit, store, namespace, lease_s=2)
    # A gateway that died right after the script: the jobs and the outbox entries, no publish.
    bodies = [new_envelope(f"job-{i}").SerializeToString() for i in range(2)]
    await store.create_many(
        [("dead", "r-dead"), ("dead", "")],
        job_ids=["job-0", "job-1"],
        tasks=bodies,
        target=outbox.target,
    )
    # The client's retry answers with the first job and makes no second one.
    retry = Intake(rabbit, store, 100, outbox=outbox)
    (again,) = await retry.accept([doc("dead", "r-dead")])
    assert again.job_id == "job-0"
    # Still leased to its (dead) writer: no relay takes it yet.
    assert await outbox.relay_expired() == 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    relay = asyncio.ensure_future(outbox.run())
    tasks = await read_all(rabbit, 2)
    assert loop.time() - started < 2 + 2  # the lease's end, then a poll (every lease / 4)
    assert sorted((t.job_id, t.chunk.document.document_version) for t in tasks) == [
        ("job-0", 1),
        ("job-1", 2),
    ]
    outbox.stop()
    await asyncio.wait_for(relay, 5)
    assert await outbox.relay_expired() == 0
    assert (await store.get("job-0")).state is JobState.ACCEPTED


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
