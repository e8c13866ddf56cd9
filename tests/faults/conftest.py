"""Fault tests: each starts its own stack with the settings its fault needs (short visibility
timeouts, quick retries, injected faults), so crashes in one never leak into another."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragline_client import Document, Job, JobState, RaglineClient
from tests.conftest import REDIS_URL
from tests.stack import Stack

# Settings every fault stack shares: reclaim quickly, retry quickly, give up after a few tries.
FAST = {
    "visibility_timeout_s": "2",
    "retry_initial_delay_s": "0.2",
    "retry_max_delay_s": "2",
    "retry_max_attempts": "3",
    "max_deliveries": "3",
    "shutdown_grace_s": "20",
}


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> str:
    """Every fault test runs on both brokers; parametrize `broker` directly to pick one."""
    return str(request.param)


@pytest.fixture
def make_stack(tmp_path: Path, broker: str) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(redis_url: str = REDIS_URL, **settings: str) -> Stack:
        settings = {**FAST, "broker": broker, **settings}
        s = Stack(tmp_path / f"stack{len(stacks)}", redis_url, **settings)
        s.workdir.mkdir(parents=True, exist_ok=True)
        stacks.append(s)
        return s

    yield make
    for s in stacks:
        s.stop_all()


def long_text(topic: str, paragraphs: int) -> str:
    """Text of many short sentences: with a small chunk size, many chunks."""
    return "\n\n".join(
        f"Section {i} on {topic}. "
        + " ".join(f"Fact {i}.{j} about {topic} is noted here." for j in range(10))
        for i in range(paragraphs)
    )


def wait_all(
    client: RaglineClient, job_ids: list[str], timeout_s: float, stack: Stack
) -> list[Job]:
    """Polls until every job is terminal; fails with the stack's logs on a timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [client.get_job(j) for j in job_ids]
        if all(j.state.is_terminal for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            pending = [
                (j.document_id, j.state, j.progress) for j in jobs if not j.state.is_terminal
            ]
            pytest.fail(f"jobs not finished after {timeout_s}s: {pending[:5]}\n{stack.logs()}")
        time.sleep(0.3)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def ingest_load(client: RaglineClient, prefix: str, documents: int, paragraphs: int) -> list[str]:
    """Queues `documents` many-chunk documents (chunk size 32); returns their job ids."""
    tag = uuid.uuid4().hex[:6]
    jobs = client.ingest_batch(
        [
            Document(
                long_text(f"{prefix} {tag} {i}", paragraphs),
                document_id=f"{prefix}-{tag}-{i}",
                chunk_size=32,
            )
            for i in range(documents)
        ]
    )
    return [j.job_id for j in jobs]


def progress_total(client: RaglineClient, job_ids: list[str], field: str) -> int:
    """The sum of one progress counter (chunks_total, chunks_embedded, chunks_indexed)."""
    return sum(getattr(client.get_job(i).progress, field) for i in job_ids)


def assert_every_chunk_indexed_once(
    client: RaglineClient, job_ids: list[str], stack: Stack
) -> list[Job]:
    """Waits for the jobs; each must complete with exactly one index row per chunk (deterministic
    keys make a redelivered chunk overwrite itself)."""
    finished = wait_all(client, job_ids, 300, stack)
    assert all(j.state == JobState.COMPLETED for j in finished), [
        (j.document_id, j.state, j.last_error) for j in finished
    ]
    for job in finished:
        assert job.progress.chunks_indexed == job.progress.chunks_total
        assert client.get_document(job.document_id).chunk_count == job.progress.chunks_total
    return finished
