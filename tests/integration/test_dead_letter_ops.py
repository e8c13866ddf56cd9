"""Requeueing dead letters against a real job store and each real broker: exactly the jobs whose
tasks went back on the queue are reopened, and a requeue that fails reopens none."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from ragline.broker.base import Broker, DeadLetter
from ragline.broker.rabbitmq import RabbitMQBroker
from ragline.broker.redis_streams import RedisStreamsBroker
from ragline.errors import BrokerUnavailable, InvalidArgument
from ragline.gateway.dead_letters import DeadLetterOps
from ragline.jobs.model import JobState, Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope
from tests.conftest import REDIS_URL
from tests.integration.test_broker_contract import RABBITMQ_URL
from tests.stack import delete_rabbitmq_queues, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture(params=["redis", "rabbitmq"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _LostMidway:
    """Mixed into a real broker: the server goes away as a requeue starts."""

    async def requeue_dead_letters(self, *args: object, **kwargs: object) -> list[DeadLetter]:
        raise BrokerUnavailable("the broker went away")


class RedisLostMidway(_LostMidway, RedisStreamsBroker):
    pass


class RabbitMQLostMidway(_LostMidway, RabbitMQBroker):
    pass


def make_broker(kind: str, namespace: str, url: str = "", lost_midway: bool = False) -> Broker:
    if kind == "redis":
        redis_cls = RedisLostMidway if lost_midway else RedisStreamsBroker
        return redis_cls(url or REDIS_URL, namespace=namespace)
    rabbit_cls = RabbitMQLostMidway if lost_midway else RabbitMQBroker
    return rabbit_cls(url or RABBITMQ_URL, namespace=namespace, operation_timeout_s=2)


@pytest.fixture
async def broker(kind: str, namespace: str, redis_client: aioredis.Redis) -> AsyncIterator[Broker]:
    b = make_broker(kind, namespace)
    await b.connect()
    yield b
    await b.close()
    if kind == "rabbitmq":
        await delete_rabbitmq_queues(namespace, ["chunk"])


@pytest.fixture
def jobs(redis_client: aioredis.Redis, namespace: str) -> JobStore:
    return JobStore(redis_client, namespace=namespace)


async def failed_jobs_with_dead_letters(
    broker: Broker, jobs: JobStore, n: int
) -> tuple[list[str], list[DeadLetter]]:
    """`n` FAILED jobs, each with its chunk task in the chunk dead-letter queue."""
    job_ids = [(await jobs.create(f"doc-{i}"))[0].job_id for i in range(n)]
    bodies = []
    for job_id in job_ids:
        env = envelope.new_envelope(job_id)
        env.chunk.document.document_id = f"doc-of-{job_id}"
        bodies.append(env.SerializeToString())
    await broker.publish("chunk", bodies)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        got += await broker.read("chunk", n, 0.5)
    now = time.time()
    for d in got:
        job_id = envelope.decode(d.body).job_id
        await broker.dead_letter(d, DeadLetter("chunk", d.body, job_id, "E", "bad", 3, now, now))
        await jobs.fail(job_id, Stage.CHUNK, "bad", 3)
    letters = await broker.list_dead_letters("chunk")
    assert sorted(x.job_id for x in letters) == sorted(job_ids)
    return job_ids, letters


async def states(jobs: JobStore, job_ids: list[str]) -> list[JobState]:
    return [(await jobs.get(j)).state for j in job_ids]


async def test_requeue_reopens_exactly_the_jobs_whose_tasks_it_requeued(
    broker: Broker, jobs: JobStore
) -> None:
    job_ids, letters = await failed_jobs_with_dead_letters(broker, jobs, 3)
    by_job = {x.job_id: x.dead_letter_id for x in letters}
    chosen = [by_job[job_ids[0]], by_job[job_ids[2]]]
    assert await DeadLetterOps(broker, jobs).requeue(Stage.CHUNK, chosen, tenant=None) == 2
    assert await states(jobs, job_ids) == [JobState.ACTIVE, JobState.FAILED, JobState.ACTIVE]
    back = []
    deadline = time.monotonic() + 5
    while len(back) < 2 and time.monotonic() < deadline:
        back += await broker.read("chunk", 10, 0.5)
    requeued = [envelope.decode(d.body) for d in back]
    assert sorted(e.job_id for e in requeued) == sorted([job_ids[0], job_ids[2]])
    assert all(e.attempt == 1 for e in requeued)  # a fresh start
    assert [x.job_id for x in await broker.list_dead_letters("chunk")] == [job_ids[1]]


async def test_a_requeue_that_fails_leaves_every_job_failed_and_every_letter_dead(
    kind: str, broker: Broker, jobs: JobStore, namespace: str
) -> None:
    job_ids, letters = await failed_jobs_with_dead_letters(broker, jobs, 2)
    port = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{port}/0" if kind == "redis" else f"amqp://guest@127.0.0.1:{port}/"
    down = make_broker(kind, namespace, url)  # the same namespace, its server unreachable
    with pytest.raises(BrokerUnavailable):
        await down.connect()
    midway = make_broker(kind, namespace, lost_midway=True)  # lists, then fails to requeue
    await midway.connect()
    for failing in (down, midway):
        for ids in ([], [letters[0].dead_letter_id]):
            with pytest.raises(BrokerUnavailable):
                await DeadLetterOps(failing, jobs).requeue(Stage.CHUNK, ids, tenant=None)
    assert await states(jobs, job_ids) == [JobState.FAILED, JobState.FAILED]
    assert await broker.list_dead_letters("chunk") == letters
    await down.close()
    await midway.close()


@pytest.mark.parametrize("bad", ["../../etc/passwd", "x\ny", "1-0\x00", ""])
async def test_malformed_ids_and_tokens_are_invalid_arguments_on_each_broker(
    broker: Broker, jobs: JobStore, bad: str
) -> None:
    _, letters = await failed_jobs_with_dead_letters(broker, jobs, 1)
    ops = DeadLetterOps(broker, jobs)
    for call in (ops.requeue, ops.purge):
        with pytest.raises(InvalidArgument) as caught:
            await call(Stage.CHUNK, [letters[0].dead_letter_id, bad], tenant=None)
        assert caught.value.field == "dead_letter_ids[1]"
    if bad:
        with pytest.raises(InvalidArgument) as caught:
            await ops.list(Stage.CHUNK, 10, bad, tenant=None)
        assert caught.value.field == "page_token"
    assert await broker.list_dead_letters("chunk") == letters  # nothing moved
