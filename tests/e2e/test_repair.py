"""A job whose task the broker lost is repaired, end to end, on either broker: the gateway's repair
loop publishes its chunk task again from the job store, the job completes with exactly one copy
of each chunk, and a job that is merely queued behind a backlog is left alone.

The tasks are lost with the brokers' own admin operations (XTRIM and XACK of a stream and its
consumer group; a queue purge on RabbitMQ), never by stopping a broker.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
import redis

from ragline_client import Job, JobState, RaglineClient
from tests.conftest import REDIS_URL
from tests.stack import RABBITMQ_URL, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

STUCK_AFTER_S = 2.0


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[list[Stack]]:
    made: list[Stack] = []
    yield made
    for s in made:
        s.stop_all()


def new_stack(stacks: list[Stack], tmp_path: Path, broker: str, **settings: str) -> Stack:
    s = Stack(tmp_path, REDIS_URL, broker=broker, stuck_after_s=str(STUCK_AFTER_S), **settings)
    stacks.append(s)
    return s


def lose_queued_tasks(stack: Stack, queue: str) -> int:
    """Loses every task of a stage queue, as a broker that lost its data would; returns how many
    there were."""
    if stack.env["RAGLINE_BROKER"] == "redis":
        r = redis.Redis.from_url(REDIS_URL)
        key = f"{stack.namespace}:q:{queue}"
        try:
            pending = r.xpending_range(key, "workers", "-", "+", 10_000)
        except redis.ResponseError:  # no consumer group yet: nothing was ever delivered
            pending = []
        if pending:
            r.xack(key, "workers", *[p["message_id"] for p in pending])
        count = int(r.xlen(key))
        r.xtrim(key, maxlen=0, approximate=False)
        return count

    async def purge() -> int:
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            q = await channel.declare_queue(f"{stack.namespace}.q.{queue}", passive=True)
            return int((await q.purge()).message_count or 0)

    return asyncio.run(purge())


def repairs(stack: Stack, job_id: str) -> int:
    value = redis.Redis.from_url(REDIS_URL).hget(f"{stack.namespace}:job:{job_id}", "repairs")
    return int(value or 0)


def content_kept(stack: Stack, job_id: str) -> bool:
    key = f"{stack.namespace}:job:{job_id}:content"
    return bool(redis.Redis.from_url(REDIS_URL).exists(key))


def doctor(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragline.cli.main", "doctor"],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.env,
    )


def wait_for(what: str, check: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def text_about(topic: str, sentences: int = 40) -> str:
    return " ".join(
        f"Sentence {i} records one more {topic} detail for the archive." for i in range(sentences)
    )


def assert_indexed_once(client: RaglineClient, job: Job, topic: str) -> None:
    assert job.state == JobState.COMPLETED, job.last_error
    total = job.progress.chunks_total
    assert total > 1
    assert client.get_document(job.document_id).chunk_count == total
    hits = client.search(f"{topic} detail", top_k=200, document_ids=[job.document_id])
    keys = [(h.document_version, h.chunk_index) for h in hits]
    assert len(keys) == len(set(keys)) == total, keys
    assert {h.document_version for h in hits} == {job.document_version}


def test_lost_chunk_and_embed_tasks_are_published_again_and_the_jobs_complete_once(
    stacks: list[Stack], tmp_path: Path, broker: str
) -> None:
    stack = new_stack(stacks, tmp_path, broker)
    stack.start("gateway", "indexer")
    with RaglineClient(stack.gateway, timeout=30) as client:
        # A chunk task lost before any chunker took it.
        early = client.ingest(text_about("glacier"), document_id="early", chunk_size=32)
        assert content_kept(stack, early.job_id)
        assert lose_queued_tasks(stack, "chunk") == 1
        stack.start("chunker")
        # Repaired once the chunker reads the queue: chunked, its embed tasks now queued.
        wait_for(
            "the lost chunk task is repaired",
            lambda: client.get_job(early.job_id).progress.chunks_total > 0,
        )
        assert repairs(stack, early.job_id) == 1

        # Embed tasks lost after chunking: the job waits on the embed stage.
        late = client.ingest(text_about("orchard"), document_id="late", chunk_size=32)
        wait_for(
            "the second document is chunked",
            lambda: client.get_job(late.job_id).progress.chunks_total > 0,
        )
        assert lose_queued_tasks(stack, "embed") >= 2
        stack.start("embedder")
        done = {j: client.wait(j, timeout=180) for j in (early.job_id, late.job_id)}
        assert_indexed_once(client, done[early.job_id], "glacier")
        assert_indexed_once(client, done[late.job_id], "orchard")
        # The second loss of `early` (its embed tasks) was a second repair.
        assert (repairs(stack, early.job_id), repairs(stack, late.job_id)) == (2, 1)
        # Finished: the document bytes kept for a repair are gone.
        assert not content_kept(stack, early.job_id)
        assert not content_kept(stack, late.job_id)
    gateway_log = stack.log_path("gateway").read_text()
    assert gateway_log.count("published its chunk task again") == 3, gateway_log[-3000:]
    assert f"job {late.job_id}" in gateway_log and "the embed stage" in gateway_log


def test_jobs_queued_behind_a_backlog_are_not_published_again(
    stacks: list[Stack], tmp_path: Path, broker: str
) -> None:
    # One chunker taking one task at a time, held 20 s on the first: the others wait behind it,
    # unchanged for longer than RAGLINE_STUCK_AFTER_S, while their queue holds them.
    stack = new_stack(
        stacks, tmp_path, broker, faults="chunk:stall:SLOWDOWN:20", read_batch_size="1"
    )
    stack.start("gateway", "chunker")
    with RaglineClient(stack.gateway, timeout=30) as client:
        jobs = [client.ingest("SLOWDOWN first.", document_id="slow")]
        jobs += [client.ingest(f"Then document {i}.", document_id=f"doc-{i}") for i in range(3)]
        wait_for(
            "the jobs count as stuck", lambda: all(client.get_job(j.job_id).stuck for j in jobs)
        )
        time.sleep(1.5)  # several sweeps of the repair loop
        run = doctor(stack)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "queued behind" in run.stdout, run.stdout
        assert "task missing" not in run.stdout, run.stdout
        wait_for(
            "every job is chunked",
            lambda: all(client.get_job(j.job_id).progress.chunks_total > 0 for j in jobs),
            timeout_s=60,
        )
        assert [repairs(stack, j.job_id) for j in jobs] == [0, 0, 0, 0]
    assert "published its chunk task again" not in stack.log_path("gateway").read_text()


def test_a_task_held_by_a_worker_past_the_stuck_time_is_neither_repaired_nor_failed(
    stacks: list[Stack], tmp_path: Path, broker: str
) -> None:
    # The chunker holds the only task 8 s, four times RAGLINE_STUCK_AFTER_S, with every queue
    # empty. RabbitMQ does not count a task a worker holds, so unless the worker touches the
    # job meanwhile it looks lost there, and with no repairs allowed it would be failed.
    stack = new_stack(stacks, tmp_path, broker, faults="chunk:stall:SLOWDOWN:8", max_repairs="0")
    stack.start("gateway", "chunker")
    with RaglineClient(stack.gateway, timeout=30) as client:
        job = client.ingest(text_about("SLOWDOWN lighthouse"), document_id="held")
        wait_for(
            "the job is chunked",
            lambda: client.get_job(job.job_id).progress.chunks_total > 0,
            timeout_s=60,
        )
        seen = client.get_job(job.job_id)
        assert seen.state != JobState.FAILED, seen.last_error
        assert not seen.stuck
        assert repairs(stack, job.job_id) == 0
    gateway_log = stack.log_path("gateway").read_text()
    assert "published its chunk task again" not in gateway_log
    assert f"job {job.job_id} failed" not in gateway_log
