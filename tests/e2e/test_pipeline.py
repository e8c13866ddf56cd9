"""The whole pipeline, each service a separate OS process: real Redis, Milvus Lite, real model."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from ragline_client import Document, JobState, Metadata, NotFoundError, RaglineClient
from tests.corpus import mixed_corpus
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def long_text(topic: str, paragraphs: int) -> str:
    return "\n\n".join(
        f"Paragraph {i} about {topic}. "
        + " ".join(
            f"The {topic} detail number {i}.{j} is recorded here for testing." for j in range(12)
        )
        for i in range(paragraphs)
    )


def test_mixed_corpus_is_ingested_and_each_document_answers_its_own_query(
    client: RaglineClient, stack: Stack
) -> None:
    corpus = mixed_corpus()
    suffix = uuid.uuid4().hex[:6]
    docs = [
        Document(
            content=d.content,
            document_id=f"{d.document_id}-{suffix}",
            content_type=d.content_type,
            metadata=Metadata(
                uploaded_by="e2e", original_filename=d.filename, attributes={"set": suffix}
            ),
        )
        for d in corpus
    ]
    jobs = client.ingest_batch(docs)
    assert len(jobs) == 20
    assert all(j.state == JobState.ACCEPTED for j in jobs)
    assert len({j.job_id for j in jobs}) == 20

    finished = [client.wait(j.job_id, timeout=300) for j in jobs]
    failed = [(j.document_id, j.last_error) for j in finished if j.state != JobState.COMPLETED]
    assert not failed, f"jobs failed: {failed}\n{stack.logs()}"

    total = 0
    for job in finished:
        assert job.progress.chunks_total > 0
        assert job.progress.chunks_embedded == job.progress.chunks_total
        assert job.progress.chunks_indexed == job.progress.chunks_total
        info = client.get_document(job.document_id)
        assert info.chunk_count == job.progress.chunks_total, job.document_id
        assert info.live_version == job.document_version
        total += info.chunk_count
    assert total >= 20

    ids = [d.document_id for d in docs]
    for d, doc in zip(corpus, docs, strict=True):
        hits = client.search(d.query, top_k=3, document_ids=ids)
        assert hits, d.query
        assert hits[0].document_id == doc.document_id, (
            f"query {d.query!r}: expected {doc.document_id}, got "
            f"{[(h.document_id, round(h.score, 3)) for h in hits]}"
        )
        assert hits[0].metadata.uploaded_by == "e2e"
        assert hits[0].metadata.original_filename == d.filename
        assert hits[0].metadata.attributes == {"set": suffix}
        assert hits[0].metadata.upload_time is not None
        assert 0 < hits[0].score <= 1.0001


def test_reingesting_a_changed_document_leaves_only_the_new_version(client: RaglineClient) -> None:
    doc_id = unique("reingest")
    first = client.wait(
        client.ingest(long_text("glaciers", 12), document_id=doc_id, chunk_size=64).job_id,
        timeout=180,
    )
    assert first.state == JobState.COMPLETED, first.last_error
    assert first.progress.chunks_total > 5

    second = client.wait(
        client.ingest(long_text("lighthouses", 3), document_id=doc_id, chunk_size=64).job_id,
        timeout=180,
    )
    assert second.state == JobState.COMPLETED, second.last_error
    assert second.document_version == first.document_version + 1
    assert second.progress.chunks_total < first.progress.chunks_total

    info = client.get_document(doc_id)
    assert info.live_version == second.document_version
    assert info.chunk_count == second.progress.chunks_total
    hits = client.search("glaciers detail", top_k=50, document_ids=[doc_id])
    assert hits
    assert all(h.document_version == second.document_version for h in hits)
    assert all("glaciers" not in h.text for h in hits)


def test_searches_during_a_reingest_never_mix_versions(client: RaglineClient) -> None:
    # The indexer writes the new version's chunks beside the old ones and switches the live
    # version when the last lands; searches meanwhile must see one version whole, never both.
    doc_id = unique("switch")
    first = client.wait(
        client.ingest(long_text("glaciers", 12), document_id=doc_id, chunk_size=64).job_id,
        timeout=180,
    )
    assert first.state == JobState.COMPLETED, first.last_error
    answers: list[set[int]] = []
    stop = threading.Event()

    def search_continuously() -> None:
        while not stop.is_set():
            hits = client.search("glaciers detail recorded", top_k=200, document_ids=[doc_id])
            answers.append({h.document_version for h in hits})

    searcher = threading.Thread(target=search_continuously)
    searcher.start()
    try:
        second = client.wait(
            client.ingest(long_text("glaciers", 18), document_id=doc_id, chunk_size=64).job_id,
            timeout=180,
        )
        seen_after = len(answers)
        deadline = time.monotonic() + 30
        while len(answers) < seen_after + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        searcher.join(timeout=60)
    assert second.state == JobState.COMPLETED, second.last_error
    assert second.progress.chunks_total > first.progress.chunks_total > 5
    mixed = [a for a in answers if len(a) != 1]
    assert not mixed, f"{len(mixed)} of {len(answers)} searches mixed versions: {mixed[:3]}"
    # The searches spanned the switch: the old version whole before it, the new one after.
    assert {first.document_version} in answers
    assert answers[-1] == {second.document_version}


def test_redelivered_ingest_of_the_same_content_never_duplicates(client: RaglineClient) -> None:
    doc_id = unique("same")
    text = long_text("orchards", 4)
    for _ in range(3):
        job = client.wait(
            client.ingest(text, document_id=doc_id, chunk_size=64).job_id, timeout=180
        )
        assert job.state == JobState.COMPLETED
    info = client.get_document(doc_id)
    assert info.chunk_count == job.progress.chunks_total
    hits = client.search("orchards detail", top_k=100, document_ids=[doc_id])
    keys = [(h.document_id, h.chunk_index) for h in hits]
    assert len(keys) == len(set(keys)) == job.progress.chunks_total


def test_delete_removes_every_chunk(client: RaglineClient) -> None:
    doc_id = unique("delete")
    job = client.wait(
        client.ingest(long_text("canals", 5), document_id=doc_id, chunk_size=64).job_id, timeout=180
    )
    assert job.state == JobState.COMPLETED
    assert client.delete(doc_id) == job.progress.chunks_total
    assert client.search("canals detail", top_k=10, document_ids=[doc_id]) == []
    with pytest.raises(NotFoundError):
        client.get_document(doc_id)
    with pytest.raises(NotFoundError):
        client.delete(doc_id)


def test_a_retry_with_the_same_request_id_returns_the_first_job(client: RaglineClient) -> None:
    doc_id = unique("idem")
    request_id = uuid.uuid4().hex
    first = client.ingest(
        "Tea is grown on terraced hillsides.", document_id=doc_id, request_id=request_id
    )
    again = client.ingest(
        "Tea is grown on terraced hillsides.", document_id=doc_id, request_id=request_id
    )
    assert again.job_id == first.job_id
    other = client.ingest(
        "Tea is grown on terraced hillsides.", document_id=doc_id, request_id=uuid.uuid4().hex
    )
    assert other.job_id != first.job_id
    assert client.wait(first.job_id, timeout=120).state == JobState.COMPLETED
    assert client.wait(other.job_id, timeout=120).state == JobState.COMPLETED
    assert client.get_document(doc_id).latest_version == 2


def test_watch_streams_progress_until_the_job_completes(client: RaglineClient) -> None:
    job = client.ingest(long_text("volcanoes", 6), document_id=unique("watch"), chunk_size=48)
    seen = list(client.watch(job.job_id, timeout=180))
    assert seen[-1].state == JobState.COMPLETED
    indexed = [j.progress.chunks_indexed for j in seen]
    assert indexed == sorted(indexed)
    assert seen[-1].progress.chunks_indexed == seen[-1].progress.chunks_total
    assert seen[-1].finish_time is not None
