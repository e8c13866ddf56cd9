"""Poisoned input: bad documents and bad chunks fail alone, with their reason, and can be replayed."""

from __future__ import annotations

import time
import uuid

import pytest

from ragline_client import Document, FailedPreconditionError, JobState, RaglineClient
from tests.faults.conftest import long_text, wait_all, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(400)]


def good_docs(tag: str, n: int) -> list[Document]:
    return [
        Document(
            f"Good document {i} of {tag}. It talks about rivers and bridges.",
            document_id=f"good-{tag}-{i}",
        )
        for i in range(n)
    ]


def test_a_document_whose_parsing_raises_is_dead_lettered_after_its_attempts_while_50_good_ones_complete(
    make_stack,
) -> None:
    stack = make_stack(faults="chunk:poison:PARSE-EXPLODES")
    stack.start()
    tag = uuid.uuid4().hex[:6]
    with RaglineClient(stack.gateway, timeout=60) as client:
        good = good_docs(tag, 50)
        bad = Document(f"This one PARSE-EXPLODES {tag}", document_id=f"bad-{tag}")
        jobs = client.ingest_batch([*good[:25], bad, *good[25:]])
        finished = wait_all(client, [j.job_id for j in jobs], 180, stack)
        by_doc = {j.document_id: j for j in finished}
        assert all(by_doc[d.document_id].state == JobState.COMPLETED for d in good)
        failed = by_doc[bad.document_id]
        assert failed.state == JobState.FAILED
        assert failed.last_error_stage == "chunk"
        assert "PARSE-EXPLODES" in failed.last_error
        assert failed.attempts == 3  # RAGLINE_RETRY_MAX_ATTEMPTS in the fault stacks

        letters = list(client.iter_dead_letters("chunk"))
        assert [(d.job_id, d.document_id, d.attempts) for d in letters] == [
            (failed.job_id, bad.document_id, 3)
        ]
        assert letters[0].error_type == "InjectedFault"
        assert letters[0].first_failure_time < letters[0].last_failure_time


def test_a_corrupt_pdf_is_dead_lettered_at_once_as_permanent(make_stack) -> None:
    stack = make_stack()
    stack.start()
    with RaglineClient(stack.gateway, timeout=60) as client:
        job = client.ingest(
            b"%PDF-1.7\nthis is not really a pdf",
            document_id="broken.pdf",
            content_type="application/pdf",
        )
        job = client.wait(job.job_id, timeout=60)
        assert job.state == JobState.FAILED
        assert job.attempts == 1  # permanent: no retries
        assert "PDF" in job.last_error
        (letter,) = client.iter_dead_letters("chunk")
        assert letter.error_type == "PermanentTaskError"


def test_a_message_that_kills_its_worker_every_time_is_dead_lettered_by_delivery_count(
    make_stack,
) -> None:
    stack = make_stack(faults="chunk:crash:KILLS-THE-WORKER")
    stack.start()
    tag = uuid.uuid4().hex[:6]
    with RaglineClient(stack.gateway, timeout=60) as client:
        bad = client.ingest(f"This text KILLS-THE-WORKER {tag}", document_id=f"killer-{tag}")
        good = client.ingest_batch(good_docs(tag, 10))
        ids = [bad.job_id, *(j.job_id for j in good)]
        crashes = 0
        deadline = time.monotonic() + 180
        while not all(client.get_job(i).state.is_terminal for i in ids):
            # Play the supervisor (systemd, Kubernetes): start the crashed chunker again.
            crashes += len(stack.restart_dead())
            assert time.monotonic() < deadline, stack.logs()
            time.sleep(0.2)
        assert crashes >= 2
        assert client.get_job(bad.job_id).state == JobState.FAILED
        assert "crashes its worker" in client.get_job(bad.job_id).last_error
        assert all(client.get_job(j.job_id).state == JobState.COMPLETED for j in good)
        (letter,) = client.iter_dead_letters("chunk")
        assert letter.job_id == bad.job_id
        # The stage keeps serving after the poison is gone.
        stack.restart_dead()
        after = client.wait(
            client.ingest("Fine again.", document_id=f"after-{tag}").job_id, timeout=60
        )
        assert after.state == JobState.COMPLETED


def test_a_transient_failure_completes_on_the_third_attempt_with_growing_delays(make_stack) -> None:
    stack = make_stack(
        faults="embed:transient:FLAKY-EMBED:2",
        retry_initial_delay_s="0.5",
        retry_multiplier="4",
        retry_jitter="0",
        retry_max_attempts="5",
    )
    stack.start()
    with RaglineClient(stack.gateway, timeout=60) as client:
        job = client.ingest("A FLAKY-EMBED chunk about windmills.", document_id="flaky")
        seen = []  # (time, attempts, state)
        for update in client.watch(job.job_id, timeout=120):
            seen.append((time.monotonic(), update.attempts, update.state, update.last_error))
        assert seen[-1][2] == JobState.COMPLETED
        assert seen[-1][1] == 3
        # The time each failed attempt was recorded: attempt 1 failed, then 2, then 3 succeeded.
        first_failure = next(t for t, a, _s, e in seen if e and a == 1)
        second_failure = next(t for t, a, _s, e in seen if e and a == 2)
        success = seen[-1][0]
        assert second_failure - first_failure >= 0.45  # waited ~0.5 s
        assert success - second_failure >= 1.9  # waited ~2 s: the delay grew
        assert success - second_failure > second_failure - first_failure


def test_one_bad_chunk_in_a_batch_of_64_fails_only_its_job_and_replays_after_the_fix(
    make_stack,
) -> None:
    stack = make_stack(faults="embed:poison:POISON-CHUNK", retry_max_attempts="2")
    # The embedder starts later, so the queue holds one full batch when it reads.
    stack.start("indexer", "chunker", "gateway")
    tag = uuid.uuid4().hex[:6]
    with RaglineClient(stack.gateway, timeout=60) as client:
        docs = [
            Document(f"Chunk {i} about harbours {tag}.", document_id=f"batch-{tag}-{i}")
            for i in range(63)
        ]
        docs.insert(
            31, Document(f"POISON-CHUNK about harbours {tag}.", document_id=f"poisoned-{tag}")
        )
        jobs = client.ingest_batch(docs)
        wait_until(
            lambda: all(client.get_job(j.job_id).progress.chunks_total == 1 for j in jobs),
            60,
            "every document to be chunked",
        )
        stack.start("embedder")
        finished = wait_all(client, [j.job_id for j in jobs], 180, stack)
        states = {j.document_id: j.state for j in finished}
        assert states.pop(f"poisoned-{tag}") == JobState.FAILED
        assert set(states.values()) == {JobState.COMPLETED}
        assert "bisecting" in stack.tail("embedder", 400)

        (letter,) = client.iter_dead_letters("embed")
        assert letter.document_id == f"poisoned-{tag}"

        # Remove the cause (restart the embedder without the fault), then replay.
        stack.stop("embedder")
        stack.env["RAGLINE_FAULTS"] = ""
        stack.start("embedder")
        assert client.requeue_dead_letters("embed") == 1
        assert list(client.iter_dead_letters("embed")) == []
        replayed = client.wait(letter.job_id, timeout=120)
        assert replayed.state == JobState.COMPLETED
        assert client.get_document(f"poisoned-{tag}").chunk_count == 1


def test_cancel_stops_the_work_and_removes_written_vectors(make_stack) -> None:
    # One chunk keeps failing transiently, so the job cannot complete before the cancel while
    # its other chunks are indexed.
    stack = make_stack(
        faults="embed:transient:HOLD-ME:1000",
        retry_max_attempts="1000",
        retry_initial_delay_s="0.5",
        retry_max_delay_s="1",
    )
    stack.start()
    with RaglineClient(stack.gateway, timeout=60) as client:
        text = long_text("deserts", 12) + "\n\nThe last section HOLD-ME is held back."
        job = client.ingest(text, document_id="cancel-me", chunk_size=24)
        wait_until(
            lambda: client.get_job(job.job_id).progress.chunks_indexed > 0,
            120,
            "some chunks indexed",
        )
        assert client.get_document("cancel-me").chunk_count > 0
        cancelled = client.cancel(job.job_id)
        assert cancelled.state == JobState.CANCELLED
        time.sleep(3)  # let batches in flight settle
        assert client.get_job(job.job_id).state == JobState.CANCELLED
        assert client.get_document("cancel-me").chunk_count == 0
        assert client.search("deserts", top_k=5, document_ids=["cancel-me"]) == []
        # A completed job cannot be cancelled.
        done = client.wait(client.ingest("Short.", document_id="done").job_id, timeout=60)
        with pytest.raises(FailedPreconditionError, match="already completed"):
            client.cancel(done.job_id)
