"""The RabbitMQ broker's own machinery against a real RabbitMQ.

The behaviour every broker shares is in tests/broker_contract.py; these tests cover what only the
RabbitMQ adapter does: the server's delivery limit, publisher confirms, reconnecting through
a broker outage, and naming dead letters that other publishers sent.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest
from yarl import URL

from ragline.broker.base import DeadLetter
from ragline.broker.rabbitmq import RabbitMQBroker
from ragline.errors import BrokerUnavailable
from ragline.jobs.model import JobState
from ragline.jobs.store import JobStore
from ragline.retry import RetryPolicy
from ragline.stage.runner import StageRunner
from ragline.stage.solo_runs import SoloRuns
from tests.integration.test_broker_contract import RABBITMQ_URL
from tests.runner_tasks import FakeHandler, embed_task
from tests.stack import delete_rabbitmq_queues

pytestmark = pytest.mark.integration

Factory = Callable[..., Awaitable[RabbitMQBroker]]


@pytest.fixture
async def rabbit(namespace: str) -> AsyncIterator[Factory]:
    """Makes connected RabbitMQ brokers in the test's namespace; deletes its queues after."""
    made: list[RabbitMQBroker] = []

    async def make(name: str, **options: Any) -> RabbitMQBroker:
        broker = RabbitMQBroker(RABBITMQ_URL, namespace=namespace, consumer_name=name, **options)
        await broker.connect()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()
    await delete_rabbitmq_queues(namespace, ["q", "q2", "embed"])


async def _die_holding(
    rabbit: Factory, queue: str, body: bytes, times: int, limit: int
) -> list[int]:
    """`times` workers in turn read the message and die holding it; their delivery counts."""
    counts = []
    for i in range(times):
        worker = await rabbit(f"worker-{i}", max_deliveries=limit)
        got = []
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            got = await worker.read(queue, 10, 0.2)
        assert [x.body for x in got] == [body]
        counts.append(got[0].delivery_count)
        await worker.close()  # never acked
    return counts


async def test_a_message_the_server_dead_letters_comes_back_to_a_reader_past_the_limit(rabbit):
    first = await rabbit("first", max_deliveries=2)
    await first.publish("q", [b"attempt-1"])
    (d,) = await first.read("q", 1, 0.5)
    # Through a delay queue first, so the message also carries an "expired" death in x-death.
    await first.retry_later(d, b"crash", delay_s=0.1)
    await first.close()  # a live consumer would be pushed the retry; the workers below must get it
    # x-delivery-limit=2: the server dead-letters it when it is returned a third time.
    assert await _die_holding(rabbit, "q", b"crash", 3, limit=2) == [1, 2, 3]
    stage = await rabbit("stage", max_deliveries=2)
    got = []
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        got = await stage.read("q", 10, 0.2)
    # Out of the stage queue, into limbo, and handed to the stage past the limit: its runner
    # dead-letters it with the job's id (the server could not read the envelope).
    assert [(x.body, x.delivery_count > 2) for x in got] == [(b"crash", True)]
    assert await stage.list_dead_letters("q") == []
    record = DeadLetter(
        queue="q",
        body=b"crash",
        job_id="job-1",
        error_type="PermanentTaskError",
        error_message="delivered 4 times without finishing",
        attempts=4,
        first_failure_time=1.0,
        last_failure_time=2.0,
    )
    await stage.dead_letter(got[0], record)
    (letter,) = await stage.list_dead_letters("q")
    assert (letter.body, letter.job_id, letter.error_type) == (
        b"crash",
        "job-1",
        "PermanentTaskError",
    )
    assert await stage.depth("q") == 0
    assert await stage.read("q", 10, 0.3) == []  # acked out of limbo: never handed out again
    # It can be requeued like any other dead letter, and starts counting deliveries afresh.
    assert await stage.requeue_dead_letters("q", [letter.dead_letter_id]) == [letter]
    again = await stage.read("q", 10, 0.5)
    assert [(x.body, x.delivery_count) for x in again] == [(b"crash", 1)]


async def test_the_servers_dead_letters_fail_their_job_through_the_stage_runner(
    rabbit, redis_client, namespace
):
    store = JobStore(redis_client, namespace=namespace)
    job, _ = await store.create("doc")
    await store.move(job.job_id, JobState.ACTIVE)
    # The broker's limit is the policy's raw delivery limit, as in production.
    policy = RetryPolicy(maximum_deliveries=1)
    limit = policy.raw_delivery_limit
    first = await rabbit("gateway", max_deliveries=limit)
    task = embed_task(job.job_id)
    await first.publish("embed", [task])
    await first.close()
    await _die_holding(rabbit, "embed", task, limit + 1, limit=limit)
    handler = FakeHandler()
    runner = StageRunner(
        handler,
        await rabbit("stage", max_deliveries=limit),
        store,
        solo_runs=SoloRuns(redis_client, namespace=namespace),
        policy=policy,
        read_timeout_s=0.2,
    )
    loop = asyncio.create_task(runner.run())
    deadline = time.monotonic() + 10
    while (await store.get(job.job_id)).state is not JobState.FAILED:
        assert time.monotonic() < deadline, "the job never failed"
        await asyncio.sleep(0.05)
    runner.stop()
    await asyncio.wait_for(loop, timeout=5)
    failed = await store.get(job.job_id)
    assert "crashes its worker" in failed.last_error
    assert handler.calls == []  # given up on before it could crash another worker
    admin = await rabbit("admin", max_deliveries=limit)
    (letter,) = await admin.list_dead_letters("embed")
    assert letter.job_id == job.job_id
    assert "crashes its worker" in letter.error_message


async def test_publish_returns_once_every_message_is_confirmed(rabbit):
    broker = await rabbit("c")
    bodies = [f"m{i}".encode() for i in range(500)]
    await broker.publish("q", bodies)
    assert await broker.depth("q") == 500
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 500 and time.monotonic() < deadline:
        batch = await broker.read("q", 200, 0.5)
        await broker.ack(batch)
        got.extend(batch)
    assert [d.body for d in got] == bodies
    assert await broker.depth("q") == 0


async def _rabbitmqctl(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, f"rabbitmqctl {' '.join(args)}: {out.decode()}"


async def _wait_for_port(url: str, timeout_s: float) -> None:
    u = URL(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((u.host or "127.0.0.1", u.port or 5672), timeout=1):
                return
        except OSError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"RabbitMQ did not come back at {u.host}:{u.port}")


@pytest.mark.exclusive
@pytest.mark.timeout(180)
async def test_consumers_resume_after_a_broker_outage(rabbit):
    broker = await rabbit("c", reconnect_interval_s=0.5)
    await broker.publish("q", [b"warm-up"])
    await broker.ack(await broker.read("q", 1, 0.5))  # a live consumer, to be restored
    await broker.publish("q", [b"before"])  # likely pushed to this consumer, unacked
    await broker.publish("q2", [b"kept"])  # on a queue nobody consumes
    await _rabbitmqctl("stop_app")
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.health()
        with pytest.raises(BrokerUnavailable):
            await broker.publish("q", [b"during"])
    finally:
        await _rabbitmqctl("start_app")
        await _wait_for_port(RABBITMQ_URL, 60)
    deadline = time.monotonic() + 60
    while True:  # what a stage's loop does: back off until the broker answers again
        try:
            await broker.publish("q", [b"after"])
            break
        except BrokerUnavailable:
            assert time.monotonic() < deadline, "the broker object never reconnected"
            await asyncio.sleep(0.5)
    await broker.health()
    got: list[bytes] = []
    while len(got) < 2 and time.monotonic() < deadline:
        try:
            batch = await broker.read("q", 10, 0.5)
        except BrokerUnavailable:
            await asyncio.sleep(0.2)  # channels may still be restoring
            continue
        await broker.ack(batch)
        got.extend(d.body for d in batch)
    # Durable quorum queue, persistent messages: what was there before the outage still is.
    assert got == [b"before", b"after"]
    assert [d.body for d in await broker.read("q2", 10, 1.0)] == [b"kept"]


async def test_a_dead_letter_with_a_foreign_message_id_gets_a_well_formed_id(rabbit):
    broker = await rabbit("admin")
    assert await broker.list_dead_letters("q") == []  # declares the queues
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        for message_id in ("../../etc/passwd", None):
            await channel.default_exchange.publish(
                aio_pika.Message(b"from elsewhere", message_id=message_id),
                routing_key=broker.dlq_name("q"),
            )
    letters = []
    deadline = time.monotonic() + 5
    while len(letters) < 2 and time.monotonic() < deadline:
        letters = await broker.list_dead_letters("q")
    ids = [x.dead_letter_id for x in letters]
    assert len(set(ids)) == 2  # the same body under two ids stays two records
    assert all(x.startswith("sha256-") and broker.is_dead_letter_id(x) for x in ids)
    assert ids == [x.dead_letter_id for x in await broker.list_dead_letters("q")]  # stable
    requeued = await broker.requeue_dead_letters("q", [ids[0]])
    assert [x.dead_letter_id for x in requeued] == [ids[0]]
    assert [x.dead_letter_id for x in await broker.list_dead_letters("q")] == [ids[1]]
