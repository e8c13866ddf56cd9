"""How both clients wait for a job, watch it and page through dead letters, against a tiny real
grpc.aio IngestService in this process that answers as scripted (tests/scripted_gateway.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from ragline_client import DeadlineExceededError, Document, JobState, Stage, UnavailableError
from ragline_client._calls import ingest_batches
from ragline_client._convert import dead_letter_to_proto
from ragline_client._types import DeadLetter
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import job_pb2
from tests.client_flavours import FLAVOURS, AwaitedClient, connected
from tests.scripted_gateway import (
    ACCEPTED,
    ACTIVE,
    COMPLETED,
    FAILED,
    Failure,
    ScriptedGateway,
    scripted_gateway,
)

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

KEY = "rl_0123456789ab_" + "s" * 32


@pytest.fixture
async def gateway() -> AsyncIterator[ScriptedGateway]:
    async with scripted_gateway() as running:
        yield running


@pytest.fixture(params=FLAVOURS)
async def client(
    request: pytest.FixtureRequest, gateway: ScriptedGateway
) -> AsyncIterator[AwaitedClient]:
    async with connected(request.param, gateway.address, timeout=5, api_key=KEY) as c:
        yield c


async def test_unary_calls_carry_the_timeout_and_the_key(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    assert (await client.get_job("j-1")).state is JobState.ACTIVE
    assert gateway.metadata[0]["authorization"] == f"Bearer {KEY}"
    (left,) = gateway.time_left
    assert left is not None and 4 < left < 5.1  # 5 s, as the server's clock rounds it


async def test_wait_returns_the_first_terminal_job_of_the_stream(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.watch_states = [ACCEPTED, ACTIVE, COMPLETED]
    assert (await client.wait("j-1", timeout=10)).state is JobState.COMPLETED
    assert gateway.methods == ["WatchJob"]
    assert gateway.metadata[0]["authorization"] == f"Bearer {KEY}"  # streams carry it too


async def test_wait_polls_when_the_stream_ends_early(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.watch_states = [ACTIVE]
    gateway.job_states = [ACTIVE, FAILED]
    assert (await client.wait("j-1", timeout=10)).state is JobState.FAILED
    assert gateway.methods == ["WatchJob", "GetJob", "GetJob"]


async def test_wait_polls_a_gateway_that_cannot_stream(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.watch_states = []
    gateway.watch_ends_with = Failure(grpc.StatusCode.UNIMPLEMENTED, "no streams here")
    gateway.job_states = [COMPLETED]
    assert (await client.wait("j-1", timeout=10)).state is JobState.COMPLETED
    assert gateway.methods == ["WatchJob", "GetJob"]


async def test_wait_past_its_timeout_is_deadline_exceeded(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.watch_states = [ACTIVE]  # then the stream ends, and polling finds it still active
    with pytest.raises(DeadlineExceededError, match=r"job j-1 did not finish within 0\.3 s"):
        await client.wait("j-1", timeout=0.3)
    assert gateway.methods == ["WatchJob", "GetJob"]


async def test_each_poll_is_bounded_by_what_is_left_of_the_wait(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    # The client's own timeout is 5 s; a poll given that much could end 4 s after the wait's.
    gateway.watch_states = [ACTIVE]
    with pytest.raises(DeadlineExceededError, match=r"job j-1 did not finish within 1\.2 s"):
        await client.wait("j-1", timeout=1.2)
    polls = [
        left
        for method, left in zip(gateway.methods, gateway.time_left, strict=True)
        if method == "GetJob"
    ]
    # Polls at about 0, 0.5 and 1 s, each given only the rest of the 1.2 s.
    assert polls and all(left is not None and left <= 1.2 for left in polls), polls
    assert polls == sorted(polls, reverse=True)


async def test_a_stream_that_fails_after_an_update_is_not_reopened(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.watch_states = [ACTIVE]
    gateway.watch_ends_with = Failure(grpc.StatusCode.UNAVAILABLE, "gateway draining")
    with pytest.raises(UnavailableError, match="gateway draining"):
        await client.collect("watch", "j-1")
    assert gateway.methods == ["WatchJob"]


def _page(*ids: str, token: str = "") -> pb.ListDeadLettersResponse:
    letters = [dead_letter_to_proto(DeadLetter(i, Stage.EMBED, job_id=f"j-{i}")) for i in ids]
    return pb.ListDeadLettersResponse(dead_letters=letters, next_page_token=token)


async def test_iter_dead_letters_follows_every_page(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    gateway.pages = [_page("a", "b", token="b"), _page("c", token="c"), _page()]
    letters = await client.collect("iter_dead_letters", "embed", page_size=2)
    assert [(d.dead_letter_id, d.stage, d.job_id) for d in letters] == [
        ("a", Stage.EMBED, "j-a"),
        ("b", Stage.EMBED, "j-b"),
        ("c", Stage.EMBED, "j-c"),
    ]
    asked = [(r.stage, r.page_size, r.page_token) for r in gateway.requests]  # type: ignore[attr-defined]
    assert asked == [(job_pb2.STAGE_EMBED, 2, t) for t in ("", "b", "c")]


async def test_a_bad_stage_is_refused_before_any_call(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    with pytest.raises(ValueError, match="unknown stage 'indexer'"):
        await client.collect("iter_dead_letters", "indexer")
    with pytest.raises(ValueError, match="unknown stage"):
        await client.list_dead_letters("everything")
    assert gateway.methods == []


async def test_ingest_many_sends_batches_of_at_most_64_and_keeps_the_order(
    client: AwaitedClient, gateway: ScriptedGateway
) -> None:
    docs = [Document(f"note {i}", f"doc-{i}") for i in range(130)]
    jobs = await client.ingest_many(docs)
    assert [job.document_id for job in jobs] == [doc.document_id for doc in docs]
    sizes = [len(r.documents) for r in gateway.requests]  # type: ignore[attr-defined]
    assert (gateway.methods, sizes) == (["IngestBatch"] * 3, [64, 64, 2])


def test_batches_also_stop_at_32_mib() -> None:
    mib = 1024 * 1024
    docs = [Document(b"x" * (12 * mib), f"big-{i}") for i in range(3)]
    docs.append(Document(b"x" * (40 * mib), "huge"))  # alone, as the gateway may still take it
    docs.append(Document("small", "small"))
    cut = [[d.document_id for d in batch] for batch in ingest_batches(docs)]
    assert cut == [["big-0", "big-1"], ["big-2"], ["huge"], ["small"]]
    assert ingest_batches([]) == []
