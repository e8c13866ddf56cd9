"""The stage runner end to end on each real broker (Redis Streams, RabbitMQ), with the real job
store: one run of each path its unit tests (tests/unit/test_stage_runner.py) take on the
in-memory broker, to show the real brokers and Redis keep the same promises under it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
import redis.asyncio as aioredis

from ragline.broker.base import Broker, BrokerAdapter, Delivery
from ragline.broker.rabbitmq import RabbitMQBroker
from ragline.broker.redis_streams import RedisStreamsBroker
from ragline.errors import BrokerUnavailable, PermanentTaskError, TransientError
from ragline.jobs.model import JobState
from ragline.jobs.store import JobStore
from ragline.retry import RetryPolicy
from ragline.stage.envelope import decode
from ragline.stage.runner import StageRunner, Task
from ragline.stage.solo_runs import SoloRuns
from tests.conftest import REDIS_URL
from tests.integration.test_broker_contract import RABBITMQ_URL
from tests.runner_tasks import FAST, FakeHandler, crash_until_given_up, embed_task
from tests.stack import delete_rabbitmq_queues

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# Crash loops end after three runs alone; RabbitMQ's own delivery limit is this policy's raw
# limit, as the factory sets it in production.
CRASHY = RetryPolicy(maximum_deliveries=3)

Connect = Callable[..., Awaitable[BrokerAdapter]]


@pytest.fixture(params=["redis", "rabbitmq"])
async def connect(
    request: pytest.FixtureRequest, namespace: str, redis_client: aioredis.Redis
) -> AsyncIterator[Connect]:
    """Opens connections of one real broker in the test's namespace; cleans up after."""
    kind: str = request.param
    made: list[BrokerAdapter] = []

    async def open_connection(name: str, visibility_s: float = 60.0) -> BrokerAdapter:
        broker: BrokerAdapter
        if kind == "redis":
            broker = RedisStreamsBroker(
                REDIS_URL,
                namespace=namespace,
                consumer_name=name,
                visibility_timeout_s=visibility_s,
            )
        else:
            broker = RabbitMQBroker(
                RABBITMQ_URL,
                namespace=namespace,
                consumer_name=name,
                max_deliveries=CRASHY.raw_delivery_limit,
            )
        await broker.connect()
        made.append(broker)
        return broker

    yield open_connection
    for broker in made:
        await broker.close()
    if kind == "rabbitmq":
        await delete_rabbitmq_queues(namespace, ["embed"])


@pytest.fixture
async def broker(connect: Connect) -> BrokerAdapter:
    return await connect("runner-test")


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> JobStore:
    return JobStore(redis_client, namespace=namespace)


@pytest.fixture
def solo_runs(redis_client: aioredis.Redis, namespace: str) -> SoloRuns:
    return SoloRuns(redis_client, namespace=namespace)


async def read_all(broker: Broker, want: int, within_s: float = 5.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within_s
    while len(got) < want and time.monotonic() < deadline:
        got += await broker.read("embed", 64, 0.1)
    return got


async def test_a_failed_task_comes_back_as_its_next_attempt_until_it_succeeds(
    broker: BrokerAdapter, store: JobStore, solo_runs: SoloRuns
) -> None:
    job, _ = await store.create("doc")

    class FlakyOnce(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            await super().handle(tasks)
            return [TransientError("busy") if t.attempt == 1 else None for t in tasks]

    handler = FlakyOnce()
    runner = StageRunner(
        handler,
        broker,
        store,
        solo_runs=solo_runs,
        policy=RetryPolicy(initial_interval_s=0.2, jitter=0.0),
        read_timeout_s=0.1,
    )
    loop = asyncio.create_task(runner.run())
    await broker.publish("embed", [embed_task(job.job_id)])
    deadline = time.monotonic() + 10
    while len(handler.calls) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    runner.stop()
    await asyncio.wait_for(loop, timeout=5)
    assert handler.calls == [[(job.job_id, 1)], [(job.job_id, 2)]]
    assert (await store.get(job.job_id)).last_error == "busy"  # noted while it retried
    assert await broker.depth("embed") == 0
    assert await broker.list_dead_letters("embed") == []


async def test_attempts_spent_dead_letter_and_fail_the_job(
    broker: BrokerAdapter, store: JobStore, solo_runs: SoloRuns
) -> None:
    job, _ = await store.create("doc")
    handler = FakeHandler()
    handler.failures[job.job_id] = TransientError("still busy")
    runner = StageRunner(handler, broker, store, solo_runs=solo_runs, policy=FAST)
    await broker.publish("embed", [embed_task(job.job_id, attempt=FAST.maximum_attempts)])
    await runner.process(await read_all(broker, 1))
    (letter,) = await broker.list_dead_letters("embed")
    assert (letter.job_id, letter.attempts, letter.error_type) == (
        job.job_id,
        FAST.maximum_attempts,
        "TransientError",
    )
    got = await store.get(job.job_id)
    assert (got.state, got.attempts, got.last_error) == (
        JobState.FAILED,
        FAST.maximum_attempts,
        "still busy",
    )
    assert await broker.depth("embed") == 0


async def test_one_poisoned_task_is_bisected_out_of_its_batch(
    broker: BrokerAdapter, store: JobStore, solo_runs: SoloRuns
) -> None:
    ids = [(await store.create(f"d{i}"))[0].job_id for i in range(5)]
    poisoned = ids[3]

    class Poisoned(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            await super().handle(tasks)
            if any(t.job_id == poisoned for t in tasks):
                raise PermanentTaskError("a chunk the tokenizer chokes on")
            return [None] * len(tasks)

    runner = StageRunner(Poisoned(), broker, store, solo_runs=solo_runs, policy=FAST)
    await broker.publish("embed", [embed_task(i) for i in ids])
    await runner.process(await read_all(broker, 5))
    assert await broker.depth("embed") == 0
    (letter,) = await broker.list_dead_letters("embed")
    assert letter.job_id == poisoned
    for job_id in ids:
        state = (await store.get(job_id)).state
        assert state is (JobState.FAILED if job_id == poisoned else JobState.ACCEPTED)


async def test_a_task_that_crashes_its_worker_every_time_is_dead_lettered(
    broker: BrokerAdapter, connect: Connect, store: JobStore, solo_runs: SoloRuns
) -> None:
    """Each worker dies holding the message: Redis hands it on after the visibility timeout,
    RabbitMQ when the dead worker's connection drops."""
    job, _ = await store.create("doc")
    handler = FakeHandler()
    handler.crashes.add(job.job_id)
    await broker.publish("embed", [embed_task(job.job_id)])
    counts = await crash_until_given_up(
        lambda name: connect(name, visibility_s=0.3),
        lambda worker: StageRunner(handler, worker, store, solo_runs=solo_runs, policy=CRASHY),
    )
    # Once in its first batch, then three runs on its own; the fifth delivery is not run.
    assert counts == [1, 2, 3, 4, 5]
    assert len(handler.calls) == 4
    (letter,) = await broker.list_dead_letters("embed")
    assert letter.job_id == job.job_id
    assert "crashes its worker: 3 runs on its own" in letter.error_message
    failed = await store.get(job.job_id)
    assert failed.state is JobState.FAILED
    assert "crashes its worker" in failed.last_error
    assert await broker.depth("embed") == 0


async def test_an_outage_mid_batch_gives_the_batch_back_without_spending_an_attempt(
    broker: BrokerAdapter, store: JobStore, solo_runs: SoloRuns
) -> None:
    job, _ = await store.create("doc")
    handler = FakeHandler()
    handler.raise_for_batch = BrokerUnavailable("stands in for an outage")
    runner = StageRunner(handler, broker, store, solo_runs=solo_runs, policy=FAST)
    await broker.publish("embed", [embed_task(job.job_id)])
    with pytest.raises(BrokerUnavailable):
        await runner.process(await read_all(broker, 1))
    (again,) = await read_all(broker, 1)
    assert (decode(again.body).attempt, again.delivery_count) == (1, 2)
    assert (await store.get(job.job_id)).last_error == ""
    handler.raise_for_batch = None
    await runner.process([again])
    assert await broker.depth("embed") == 0
    assert await broker.list_dead_letters("embed") == []


async def test_tasks_of_cancelled_or_unknown_jobs_are_acked_without_handling(
    broker: BrokerAdapter, store: JobStore, solo_runs: SoloRuns
) -> None:
    cancelled, _ = await store.create("cancelled")
    await store.move(cancelled.job_id, JobState.CANCELLED)
    live, _ = await store.create("live")
    handler = FakeHandler()
    runner = StageRunner(handler, broker, store, solo_runs=solo_runs, policy=FAST)
    await broker.publish(
        "embed",
        [embed_task(cancelled.job_id), embed_task("unknown-job"), embed_task(live.job_id)],
    )
    await runner.process(await read_all(broker, 3))
    assert handler.calls == [[(live.job_id, 1)]]
    assert await broker.depth("embed") == 0
    assert await broker.list_dead_letters("embed") == []
