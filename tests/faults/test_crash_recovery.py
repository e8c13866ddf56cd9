"""kill -9 a stage in the middle of a run, start it again: every chunk lands exactly once."""

from __future__ import annotations

import uuid

import pytest

from ragline_client import Document, JobState, RaglineClient
from tests.faults.conftest import long_text, wait_all, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(400)]


@pytest.mark.parametrize("victim", ["chunker", "embedder", "indexer"])
def test_kill_9_mid_run_loses_and_duplicates_nothing(make_stack, victim: str) -> None:
    stack = make_stack()
    stack.start()
    tag = uuid.uuid4().hex[:6]
    docs = [
        Document(
            long_text(f"topic{i} {tag}", 6), document_id=f"crash-{victim}-{tag}-{i}", chunk_size=32
        )
        for i in range(12)
    ]
    with RaglineClient(stack.gateway, timeout=60) as client:
        jobs = client.ingest_batch(docs)
        ids = [j.job_id for j in jobs]

        def progress() -> tuple[int, int, int, int]:
            js = [client.get_job(i) for i in ids]
            return (
                sum(1 for j in js if j.progress.chunks_total),
                sum(j.progress.chunks_total for j in js),
                sum(j.progress.chunks_embedded for j in js),
                sum(j.progress.chunks_indexed for j in js),
            )

        # Kill the victim while it is demonstrably mid-way through the run.
        if victim == "chunker":
            wait_until(lambda: progress()[0] >= 1, 60, "the chunker to start")
        elif victim == "embedder":
            wait_until(lambda: progress()[2] >= 10, 120, "the embedder to start")
        else:
            wait_until(lambda: progress()[3] >= 10, 120, "the indexer to start")
        before = progress()
        stack.kill(victim)
        stack.start(victim)

        finished = wait_all(client, ids, 300, stack)
        assert all(j.state == JobState.COMPLETED for j in finished), [
            (j.document_id, j.state, j.last_error) for j in finished
        ]
        total = sum(j.progress.chunks_total for j in finished)
        assert total >= 200, f"the run must be large enough to be interrupted ({total} chunks)"
        # Killed genuinely mid-way, not before or after the work.
        if victim == "embedder":
            assert before[2] < total
        if victim == "indexer":
            assert before[3] < total
        for job in finished:
            assert job.progress.chunks_indexed == job.progress.chunks_total
            # Deterministic keys: a redelivered chunk overwrote itself, so the index holds exactly
            # one row per chunk.
            assert client.get_document(job.document_id).chunk_count == job.progress.chunks_total
