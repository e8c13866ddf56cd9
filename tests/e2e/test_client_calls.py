"""Every call of both Python clients against the live stack (Redis broker): each case is written
once and runs for RaglineClient and for AsyncRaglineClient (tests/client_flavours.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from ragline_client import (
    DeadLetter,
    DeadlineExceededError,
    Document,
    FailedPreconditionError,
    InvalidArgumentError,
    Job,
    JobState,
    NotFoundError,
)
from tests.client_flavours import FLAVOURS, AwaitedClient, connected
from tests.stack import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.parametrize("stack", ["redis"], indirect=True),
]

WAIT_S = 120


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def long_text(topic: str, paragraphs: int) -> str:
    return "\n\n".join(
        f"Section {i} on {topic}. "
        + " ".join(f"Observation {i}.{j} about {topic} was noted by the survey." for j in range(10))
        for i in range(paragraphs)
    )


@pytest.fixture(params=FLAVOURS)
async def client(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[AwaitedClient]:
    async with connected(request.param, stack.gateway, timeout=60) as c:
        yield c


async def ingested(client: AwaitedClient, text: str, **options: object) -> Job:
    """A document ingested and waited for; it must complete."""
    job = await client.ingest(text, document_id=unique("doc"), **options)
    assert job.state is JobState.ACCEPTED
    done: Job = await client.wait(job.job_id, timeout=WAIT_S)
    assert done.state is JobState.COMPLETED, done
    return done


async def test_ingest_then_wait_then_search_and_get_the_document(client: AwaitedClient) -> None:
    job = await ingested(client, "Lamplighters walked the harbour wall at dusk with long poles.")
    assert job.document_version == 1
    assert job.progress.chunks_indexed == job.progress.chunks_total > 0
    assert job.finish_time is not None
    hits = await client.search(
        "who lit the harbour lamps?", top_k=3, document_ids=[job.document_id]
    )
    assert hits and hits[0].document_id == job.document_id
    assert "Lamplighters" in hits[0].text
    info = await client.get_document(job.document_id)
    assert (info.live_version, info.latest_version) == (1, 1)
    assert info.chunk_count == job.progress.chunks_total


async def test_watch_follows_the_job_to_completion(client: AwaitedClient) -> None:
    job = await client.ingest(long_text("glaciers", 4), document_id=unique("watch"), chunk_size=48)
    seen: list[Job] = await client.collect("watch", job.job_id, timeout=WAIT_S)
    assert seen[0].job_id == job.job_id
    assert seen[-1].state is JobState.COMPLETED
    assert all(not j.state.is_terminal for j in seen[:-1])
    indexed = [j.progress.chunks_indexed for j in seen]
    assert indexed == sorted(indexed) and indexed[-1] == seen[-1].progress.chunks_total


async def test_delete_removes_every_chunk(client: AwaitedClient) -> None:
    job = await ingested(client, long_text("canals", 3), chunk_size=64)
    assert await client.delete(job.document_id) == job.progress.chunks_total
    assert await client.search("canals survey", document_ids=[job.document_id]) == []
    with pytest.raises(NotFoundError):
        await client.get_document(job.document_id)


async def test_cancel_stops_a_running_job_but_not_a_completed_one(client: AwaitedClient) -> None:
    running = await client.ingest(long_text("deserts", 12), document_id=unique("c"), chunk_size=24)
    cancelled = await client.cancel(running.job_id)
    assert cancelled.state is JobState.CANCELLED
    assert (await client.wait(running.job_id, timeout=WAIT_S)).state is JobState.CANCELLED
    done = await ingested(client, "A short note that finishes before anyone cancels it.")
    with pytest.raises(FailedPreconditionError, match="already completed"):
        await client.cancel(done.job_id)


async def test_ingest_many_returns_every_job_in_order(client: AwaitedClient) -> None:
    docs = [
        Document(f"Entry {i}: the ferry crossed the strait at {6 + i} o'clock.", unique(f"m{i}"))
        for i in range(3)
    ]
    jobs: list[Job] = await client.ingest_many(docs)
    assert [j.document_id for j in jobs] == [d.document_id for d in docs]
    for job in jobs:
        assert (await client.wait(job.job_id, timeout=WAIT_S)).state is JobState.COMPLETED


async def test_bad_input_is_invalid_argument_naming_the_field(client: AwaitedClient) -> None:
    with pytest.raises(InvalidArgumentError) as single:
        await client.ingest("x", document_id=unique("bad"), content_type="image/x-unknown")
    assert single.value.field == "content_type"
    assert single.value.code == "INVALID_ARGUMENT"
    assert "content_type" in str(single.value)
    good, bad = (
        Document("Fine.", unique("good")),
        Document("Fine.", unique("bad"), chunk_size=100_000),
    )
    with pytest.raises(InvalidArgumentError) as batch:
        await client.ingest_batch([good, bad])
    assert batch.value.field == "documents[1].config.chunk_size"
    with pytest.raises(NotFoundError):  # the batch was refused whole
        await client.get_document(good.document_id)


async def test_an_unknown_job_is_not_found(client: AwaitedClient) -> None:
    job_id = uuid.uuid4().hex
    with pytest.raises(NotFoundError) as got:
        await client.get_job(job_id)
    assert job_id in got.value.details
    with pytest.raises(NotFoundError):
        await client.collect("watch", job_id, timeout=30)
    with pytest.raises(NotFoundError):
        await client.cancel(job_id)


async def test_a_wait_past_its_timeout_is_deadline_exceeded(client: AwaitedClient) -> None:
    job = await client.ingest(long_text("tides", 8), document_id=unique("slow"), chunk_size=24)
    with pytest.raises(DeadlineExceededError, match=r"did not finish within 0\.01 s") as caught:
        await client.wait(job.job_id, timeout=0.01)
    assert isinstance(caught.value, TimeoutError)
    await client.cancel(job.job_id)  # nothing else needs it


async def test_a_document_the_chunker_cannot_read_is_listed_as_a_dead_letter(
    client: AwaitedClient,
) -> None:
    job = await client.ingest(
        b"%PDF-1.7\nnot really a pdf", document_id=unique("poison"), content_type="application/pdf"
    )
    assert (await client.wait(job.job_id, timeout=WAIT_S)).state is JobState.FAILED
    letters: list[DeadLetter] = await client.collect("iter_dead_letters", "chunk", page_size=2)
    (mine,) = [d for d in letters if d.job_id == job.job_id]
    assert (mine.document_id, mine.stage.value) == (job.document_id, "chunk")
    page = await client.list_dead_letters("chunk", page_size=1000)
    assert mine in page.dead_letters
    with pytest.raises(InvalidArgumentError) as caught:
        await client.list_dead_letters("chunk", page_size=1001)
    assert caught.value.field == "page_size"
    assert await client.purge_dead_letters("chunk", [mine.dead_letter_id]) == 1
