"""The Python client's own types: proto conversions, job states, error mapping and call wrapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest

import ragline_client
from ragline_client import (
    DeadLetter,
    DeadLetterPage,
    DeadlineExceededError,
    Document,
    FailedPreconditionError,
    Hit,
    InvalidArgumentError,
    Job,
    JobState,
    Metadata,
    NotFoundError,
    RaglineClient,
    RaglineClientError,
    ResourceExhaustedError,
    Stage,
    UnavailableError,
    guess_content_type,
)
from ragline_client._convert import (
    dead_letter_from_proto,
    dead_letter_page_from_proto,
    dead_letter_to_proto,
    document_info_from_proto,
    document_to_proto,
    hit_from_proto,
    job_from_proto,
    metadata_from_proto,
    metadata_to_proto,
    stage_from_proto,
    stage_to_proto,
    state_from_proto,
    state_to_proto,
)
from ragline_client._errors import from_rpc_error
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import job_pb2

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _job_proto(state: int = job_pb2.JOB_STATE_ACTIVE, **fields: Any) -> job_pb2.Job:
    msg = job_pb2.Job(
        job_id="j-1",
        document_id="docs/a.md",
        document_version=3,
        state=state,  # type: ignore[arg-type]
        progress=job_pb2.JobProgress(chunks_total=10, chunks_embedded=7, chunks_indexed=4),
        last_error="milvus timed out",
        last_error_stage=job_pb2.STAGE_INDEX,
        attempts=2,
        request_id="r-1",
        **fields,
    )
    msg.create_time.FromDatetime(T0)
    msg.update_time.FromDatetime(T0 + timedelta(seconds=5))
    return msg


def test_job_from_proto_converts_every_field() -> None:
    job = job_from_proto(_job_proto())
    assert job.job_id == "j-1"
    assert job.document_id == "docs/a.md"
    assert job.document_version == 3
    assert job.state is JobState.ACTIVE
    assert (job.progress.chunks_total, job.progress.chunks_embedded) == (10, 7)
    assert job.progress.chunks_indexed == 4
    assert (job.last_error, job.last_error_stage) == ("milvus timed out", "index")
    assert (job.attempts, job.request_id) == (2, "r-1")
    assert job.create_time == T0
    assert job.create_time is not None and job.create_time.tzinfo is not None
    assert job.update_time == T0 + timedelta(seconds=5)
    assert job.finish_time is None  # unset timestamps are None, not the epoch
    assert not job.stuck
    assert job_from_proto(_job_proto(stuck=True)).stuck


def test_job_to_dict_is_json_able() -> None:
    data = json.loads(json.dumps(job_from_proto(_job_proto()).to_dict()))
    assert data["state"] == "active"
    assert data["progress"] == {"chunks_total": 10, "chunks_embedded": 7, "chunks_indexed": 4}
    assert data["create_time"] == T0.isoformat()
    assert data["finish_time"] is None
    assert data["stuck"] is False


@pytest.mark.parametrize(
    ("value", "state", "terminal"),
    [
        (job_pb2.JOB_STATE_ACCEPTED, JobState.ACCEPTED, False),
        (job_pb2.JOB_STATE_ACTIVE, JobState.ACTIVE, False),
        (job_pb2.JOB_STATE_COMPLETED, JobState.COMPLETED, True),
        (job_pb2.JOB_STATE_FAILED, JobState.FAILED, True),
        (job_pb2.JOB_STATE_CANCELLED, JobState.CANCELLED, True),
    ],
)
def test_state_mapping_round_trips(value: int, state: JobState, terminal: bool) -> None:
    assert state_from_proto(value) is state
    assert state_to_proto(state) == value
    assert state.is_terminal is terminal
    assert str(state) == state.value == state.name.lower()


@pytest.mark.parametrize("value", [job_pb2.JOB_STATE_UNSPECIFIED, 99])
def test_unknown_state_raises_a_client_error(value: int) -> None:
    with pytest.raises(RaglineClientError, match="upgrade"):
        state_from_proto(value)


def test_metadata_round_trip_keeps_time_and_attributes() -> None:
    meta = Metadata(
        uploaded_by="ana",
        upload_time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        original_filename="a.md",
        attributes={"tenant": "acme", "lang": "en"},
    )
    back = metadata_from_proto(metadata_to_proto(meta))
    assert back.upload_time == meta.upload_time  # same instant...
    assert back.upload_time is not None and back.upload_time.utcoffset() == timedelta(0)  # in UTC
    assert (back.uploaded_by, back.original_filename) == ("ana", "a.md")
    assert dict(back.attributes) == {"tenant": "acme", "lang": "en"}


def test_metadata_without_time_leaves_it_unset() -> None:
    msg = metadata_to_proto(Metadata(uploaded_by="ana"))
    assert not msg.HasField("upload_time")
    assert metadata_from_proto(msg).upload_time is None


def test_naive_upload_time_is_local_time() -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5)
    back = metadata_from_proto(metadata_to_proto(Metadata(upload_time=naive)))
    assert back.upload_time == naive.astimezone()


def test_document_to_proto_encodes_text_and_sets_only_given_config() -> None:
    msg = document_to_proto(Document("héllo", "d1", request_id="r"))
    assert msg.content == "héllo".encode()
    assert (msg.document_id, msg.content_type, msg.request_id) == ("d1", "text/plain", "r")
    assert not msg.HasField("metadata")
    assert not msg.config.HasField("chunk_size")
    assert not msg.config.HasField("chunk_overlap")
    assert msg.config.embedding_model == ""


def test_document_to_proto_keeps_explicit_zero_overlap() -> None:
    doc = Document(
        b"%PDF",
        "d",
        "application/pdf",
        chunk_size=128,
        chunk_overlap=0,
        embedding_model="m",
        metadata=Metadata(attributes={"k": "v"}),
    )
    msg = document_to_proto(doc)
    assert msg.content == b"%PDF"
    assert msg.config.chunk_size == 128
    assert msg.config.HasField("chunk_overlap") and msg.config.chunk_overlap == 0
    assert msg.config.embedding_model == "m"
    assert dict(msg.metadata.attributes) == {"k": "v"}


def test_hit_from_proto_and_to_dict() -> None:
    msg = pb.SearchHit(
        document_id="d",
        chunk_index=4,
        text="some text",
        score=0.873,
        document_version=2,
        metadata=job_pb2.DocumentMetadata(original_filename="d.md"),
    )
    hit = hit_from_proto(msg)
    assert hit.score == 0.873  # float32 noise removed
    assert hit == Hit("d", 4, "some text", 0.873, Metadata(original_filename="d.md"), 2)
    data = json.loads(json.dumps(hit.to_dict()))
    assert set(data) == {
        "document_id",
        "chunk_index",
        "text",
        "score",
        "metadata",
        "document_version",
    }
    assert data["metadata"]["original_filename"] == "d.md"
    assert data["metadata"]["upload_time"] is None


def test_document_info_from_proto() -> None:
    info = document_info_from_proto(
        pb.GetDocumentResponse(document_id="d", live_version=1, latest_version=2, chunk_count=9)
    )
    assert info.to_dict() == {
        "document_id": "d",
        "live_version": 1,
        "latest_version": 2,
        "chunk_count": 9,
    }


@pytest.mark.parametrize(
    ("value", "stage"),
    [
        (job_pb2.STAGE_CHUNK, Stage.CHUNK),
        (job_pb2.STAGE_EMBED, Stage.EMBED),
        (job_pb2.STAGE_INDEX, Stage.INDEX),
    ],
)
def test_stage_mapping_round_trips(value: int, stage: Stage) -> None:
    assert stage_from_proto(value) is stage
    assert stage_to_proto(stage) == value
    assert stage_to_proto(stage.value) == value  # plain names work too
    assert stage_to_proto(stage.value.upper()) == value
    assert str(stage) == stage.value == stage.name.lower()


@pytest.mark.parametrize("value", [job_pb2.STAGE_UNSPECIFIED, 99])
def test_unknown_stage_from_the_gateway_raises_a_client_error(value: int) -> None:
    with pytest.raises(RaglineClientError, match="upgrade"):
        stage_from_proto(value)


@pytest.mark.parametrize("name", ["chunks", "", "STAGE_CHUNK", "gateway"])
def test_unknown_stage_name_is_a_value_error_naming_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match="expected one of 'chunk', 'embed', 'index'"):
        Stage.parse(name)
    with pytest.raises(ValueError, match=f"unknown stage {name!r}"):
        stage_to_proto(name)


def test_job_last_error_stage_is_empty_when_unset() -> None:
    msg = _job_proto()
    msg.last_error_stage = job_pb2.STAGE_UNSPECIFIED
    assert job_from_proto(msg).last_error_stage == ""


DEAD = DeadLetter(
    dead_letter_id="1714000000000-0",
    stage=Stage.EMBED,
    job_id="j-1",
    document_id="docs/a.md",
    error_type="DeliveryLimitExceeded",
    error_message="embedder timed out\nafter 3 attempts",
    attempts=3,
    first_failure_time=T0,
    last_failure_time=T0 + timedelta(minutes=2),
    message_bytes=2048,
)


def test_dead_letter_round_trips_with_times_and_stage() -> None:
    msg = dead_letter_to_proto(DEAD)
    assert msg.stage == job_pb2.STAGE_EMBED
    assert msg.first_failure_time.ToDatetime(tzinfo=UTC) == T0
    back = dead_letter_from_proto(msg)
    assert back == DEAD
    assert back.stage is Stage.EMBED
    assert back.last_failure_time is not None and back.last_failure_time.tzinfo is not None


def test_dead_letter_without_times_or_job_keeps_them_unset() -> None:
    msg = pb.DeadLetter(dead_letter_id="d-1", stage=job_pb2.STAGE_CHUNK, error_type="Undecodable")
    letter = dead_letter_from_proto(msg)
    assert (letter.first_failure_time, letter.last_failure_time) == (None, None)  # not the epoch
    assert (letter.job_id, letter.document_id, letter.attempts) == ("", "", 0)
    back = dead_letter_to_proto(letter)
    assert not back.HasField("first_failure_time") and not back.HasField("last_failure_time")


def test_dead_letter_to_dict_is_json_able() -> None:
    data = json.loads(json.dumps(DEAD.to_dict()))
    assert data == {
        "dead_letter_id": "1714000000000-0",
        "stage": "embed",
        "job_id": "j-1",
        "document_id": "docs/a.md",
        "error_type": "DeliveryLimitExceeded",
        "error_message": "embedder timed out\nafter 3 attempts",
        "attempts": 3,
        "first_failure_time": T0.isoformat(),
        "last_failure_time": (T0 + timedelta(minutes=2)).isoformat(),
        "message_bytes": 2048,
    }


def test_dead_letter_page_from_proto() -> None:
    msg = pb.ListDeadLettersResponse(dead_letters=[dead_letter_to_proto(DEAD)], next_page_token="t")
    page = dead_letter_page_from_proto(msg)
    assert page == DeadLetterPage([DEAD], "t")
    assert page.to_dict() == {"dead_letters": [DEAD.to_dict()], "next_page_token": "t"}


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("a.txt", "text/plain"),
        ("a.TEXT", "text/plain"),
        ("a.md", "text/markdown"),
        ("a.markdown", "text/markdown"),
        ("a.html", "text/html"),
        ("a.HTM", "text/html"),
        ("a.pdf", "application/pdf"),
        ("a.docx", None),
        ("README", None),
    ],
)
def test_guess_content_type(name: str, content_type: str | None) -> None:
    assert guess_content_type(name) == content_type


def test_document_from_file_fills_defaults(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n")
    doc = Document.from_file(path, metadata=Metadata(uploaded_by="ana"), chunk_size=64)
    assert (doc.document_id, doc.content_type, doc.content) == (
        "notes.md",
        "text/markdown",
        b"# Notes\n",
    )
    assert doc.metadata == Metadata(uploaded_by="ana", original_filename="notes.md")
    assert doc.chunk_size == 64


def test_document_from_file_rejects_unknown_extension_unless_typed(tmp_path: Path) -> None:
    path = tmp_path / "notes.rst"
    path.write_text("x")
    with pytest.raises(InvalidArgumentError, match="unsupported file type"):
        Document.from_file(path)
    doc = Document.from_file(path, document_id="n", content_type="text/plain")
    assert (doc.document_id, doc.content_type) == ("n", "text/plain")


class FakeRpcError(grpc.RpcError):
    """Stands in for the grpc.Call-and-RpcError object a failed call raises."""

    def __init__(self, code: grpc.StatusCode, details: str | None = "") -> None:
        super().__init__()
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, NotFoundError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPreconditionError),
        (grpc.StatusCode.UNAVAILABLE, UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
        (grpc.StatusCode.PERMISSION_DENIED, ragline_client.PermissionDeniedError),
        (grpc.StatusCode.UNAUTHENTICATED, ragline_client.UnauthenticatedError),
        (grpc.StatusCode.INTERNAL, RaglineClientError),
    ],
)
def test_rpc_errors_map_to_client_errors(code: grpc.StatusCode, cls: type[Exception]) -> None:
    err = from_rpc_error(FakeRpcError(code, "documents[1].content_type: unsupported"), "h:1")
    assert type(err) is cls
    assert err.code == code.name
    assert err.details == "documents[1].content_type: unsupported"
    assert str(err)  # a sentence, never empty


def test_unreachable_gateway_message_says_what_to_do() -> None:
    exc = FakeRpcError(
        grpc.StatusCode.UNAVAILABLE,
        "failed to connect to all addresses; last "
        "error: UNKNOWN: ipv4:127.0.0.1:50051: Connection refused",
    )
    err = from_rpc_error(exc, "127.0.0.1:50051")
    assert str(err) == (
        "cannot reach the ragline gateway at 127.0.0.1:50051: is it running? "
        "(start it with `ragline up`)"
    )
    assert err.retryable  # it may be restarting


def test_unavailable_said_by_the_server_keeps_its_words() -> None:
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "broker is down"), "h:1")
    assert "broker is down" in str(err)
    assert "ragline up" not in str(err)


def test_error_without_status_is_unknown() -> None:
    err = from_rpc_error(grpc.RpcError(), "h:1")
    assert (type(err), err.code, err.details) == (RaglineClientError, "UNKNOWN", "")
    assert isinstance(
        from_rpc_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED), "h"), TimeoutError
    )


def test_public_surface_is_all_and_only_all() -> None:
    for name in ragline_client.__all__:
        assert not name.startswith("_")
        assert hasattr(ragline_client, name)
    assert "RaglineClient" in ragline_client.__all__


class FakeStream:
    def __init__(self, items: list[pb.WatchJobResponse], error: grpc.RpcError | None = None):
        self.items, self.error, self.cancelled = items, error, False

    def __iter__(self) -> Iterator[pb.WatchJobResponse]:
        yield from self.items
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        self.cancelled = True


class FakeStub:
    """Replaces the generated stub; records requests and answers from canned messages."""

    def __init__(self) -> None:
        self.stream = FakeStream([])
        self.jobs: list[job_pb2.Job] = []
        self.pages: list[pb.ListDeadLettersResponse] = []
        self.error: grpc.RpcError | None = None
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []

    def GetJob(self, request: pb.GetJobRequest, **kwargs: Any) -> pb.GetJobResponse:
        self.calls.append(("GetJob", request, kwargs))
        if self.error is not None:
            raise self.error
        return pb.GetJobResponse(job=self.jobs.pop(0))

    def WatchJob(self, request: pb.WatchJobRequest, **kwargs: Any) -> FakeStream:
        self.calls.append(("WatchJob", request, kwargs))
        return self.stream

    def CancelJob(self, request: pb.CancelJobRequest, **kwargs: Any) -> pb.CancelJobResponse:
        self.calls.append(("CancelJob", request, kwargs))
        if self.error is not None:
            raise self.error
        return pb.CancelJobResponse(job=self.jobs.pop(0))

    def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, **kwargs: Any
    ) -> pb.ListDeadLettersResponse:
        self.calls.append(("ListDeadLetters", request, kwargs))
        return self.pages.pop(0)

    def RequeueDeadLetters(
        self, request: pb.RequeueDeadLettersRequest, **kwargs: Any
    ) -> pb.RequeueDeadLettersResponse:
        self.calls.append(("RequeueDeadLetters", request, kwargs))
        return pb.RequeueDeadLettersResponse(requeued=len(request.dead_letter_ids) or 7)

    def PurgeDeadLetters(
        self, request: pb.PurgeDeadLettersRequest, **kwargs: Any
    ) -> pb.PurgeDeadLettersResponse:
        self.calls.append(("PurgeDeadLetters", request, kwargs))
        return pb.PurgeDeadLettersResponse(purged=len(request.dead_letter_ids) or 5)


@pytest.fixture
def client() -> Iterator[tuple[RaglineClient, FakeStub]]:
    # Creating a channel does not connect; the fake stub makes sure nothing is ever sent.
    with RaglineClient("h:1", metadata=[("authorization", "Bearer t")], timeout=5) as c:
        stub = FakeStub()
        c._stub = stub  # type: ignore[assignment]
        yield c, stub


def test_calls_pass_timeout_and_metadata(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.jobs = [_job_proto()]
    assert c.get_job("j-1").job_id == "j-1"
    name, request, kwargs = stub.calls[0]
    assert (name, request.job_id) == ("GetJob", "j-1")
    assert kwargs == {"timeout": 5, "metadata": (("authorization", "Bearer t"),)}


def test_call_errors_are_reraised_with_cause(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.error = FakeRpcError(grpc.StatusCode.NOT_FOUND, "job j-9 not found")
    with pytest.raises(NotFoundError, match="job j-9 not found") as info:
        c.get_job("j-9")
    assert info.value.__cause__ is stub.error


def test_wait_returns_the_first_terminal_job(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.stream = FakeStream(
        [
            pb.WatchJobResponse(job=_job_proto(s))
            for s in (
                job_pb2.JOB_STATE_ACCEPTED,
                job_pb2.JOB_STATE_ACTIVE,
                job_pb2.JOB_STATE_COMPLETED,
            )
        ]
    )
    assert c.wait("j-1").state is JobState.COMPLETED
    assert stub.stream.cancelled


def test_wait_polls_when_the_stream_ends_early(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.stream = FakeStream([pb.WatchJobResponse(job=_job_proto(job_pb2.JOB_STATE_ACTIVE))])
    stub.jobs = [_job_proto(job_pb2.JOB_STATE_FAILED)]
    assert c.wait("j-1").state is JobState.FAILED


def test_wait_timeout_is_deadline_exceeded(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.stream = FakeStream([], FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline"))
    with pytest.raises(DeadlineExceededError, match=r"did not finish within 0\.5 s"):
        c.wait("j-1", timeout=0.5)
    assert stub.calls[0][2]["timeout"] == 0.5


def test_watch_errors_mid_stream_are_client_errors(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.stream = FakeStream(
        [pb.WatchJobResponse(job=_job_proto())],
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "socket closed"),
    )
    seen: list[Job] = []
    with pytest.raises(UnavailableError, match="cannot reach"):
        seen.extend(c.watch("j-1"))
    assert [job.state for job in seen] == [JobState.ACTIVE]


def test_cancel_returns_the_job(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.jobs = [_job_proto(job_pb2.JOB_STATE_CANCELLED)]
    assert c.cancel("j-1").state is JobState.CANCELLED
    name, request, kwargs = stub.calls[0]
    assert (name, request.job_id, kwargs["timeout"]) == ("CancelJob", "j-1", 5)


def test_cancelling_a_completed_job_is_failed_precondition(
    client: tuple[RaglineClient, FakeStub],
) -> None:
    c, stub = client
    stub.error = FakeRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, "job 'j-1' is already completed; nothing to cancel"
    )
    with pytest.raises(FailedPreconditionError) as info:
        c.cancel("j-1")
    assert str(info.value) == "job 'j-1' is already completed; nothing to cancel"
    assert info.value.code == "FAILED_PRECONDITION"


def _page(*ids: str, token: str = "") -> pb.ListDeadLettersResponse:
    letters = [dead_letter_to_proto(DeadLetter(i, Stage.INDEX, job_id=f"j-{i}")) for i in ids]
    return pb.ListDeadLettersResponse(dead_letters=letters, next_page_token=token)


def test_list_dead_letters_returns_one_page(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.pages = [_page("a", "b", token="b")]
    page = c.list_dead_letters("index", page_size=2, page_token="x")
    assert [d.dead_letter_id for d in page.dead_letters] == ["a", "b"]
    assert page.next_page_token == "b"
    request = stub.calls[0][1]
    assert (request.stage, request.page_size, request.page_token) == (job_pb2.STAGE_INDEX, 2, "x")


def test_iter_dead_letters_follows_every_page(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    stub.pages = [_page("a", "b", token="b"), _page("c", token="c"), _page()]
    letters = list(c.iter_dead_letters(Stage.INDEX, page_size=2))
    assert [d.dead_letter_id for d in letters] == ["a", "b", "c"]
    tokens = [(request.page_token, request.page_size) for _, request, _ in stub.calls]
    assert tokens == [("", 2), ("b", 2), ("c", 2)]


def test_iter_dead_letters_checks_the_stage_at_once(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    with pytest.raises(ValueError, match="unknown stage 'indexer'"):
        c.iter_dead_letters("indexer")
    assert stub.calls == []


def test_requeue_and_purge_send_the_stage_and_ids(client: tuple[RaglineClient, FakeStub]) -> None:
    c, stub = client
    assert c.requeue_dead_letters("chunk", ["a", "b"]) == 2
    assert c.requeue_dead_letters(Stage.CHUNK) == 7
    assert c.purge_dead_letters("embed", ("x",)) == 1
    assert c.purge_dead_letters("embed") == 5
    sent = [(name, r.stage, list(r.dead_letter_ids)) for name, r, _ in stub.calls]
    assert sent == [
        ("RequeueDeadLetters", job_pb2.STAGE_CHUNK, ["a", "b"]),
        ("RequeueDeadLetters", job_pb2.STAGE_CHUNK, []),  # empty means all
        ("PurgeDeadLetters", job_pb2.STAGE_EMBED, ["x"]),
        ("PurgeDeadLetters", job_pb2.STAGE_EMBED, []),
    ]


def test_bad_stage_or_a_lone_id_string_sends_nothing(
    client: tuple[RaglineClient, FakeStub],
) -> None:
    c, stub = client
    with pytest.raises(ValueError, match="unknown stage"):
        c.purge_dead_letters("all")
    with pytest.raises(ValueError, match="unknown stage"):
        c.list_dead_letters("")
    with pytest.raises(TypeError, match="not a single str"):
        c.requeue_dead_letters("chunk", "1714000000000-0")
    assert stub.calls == []
