"""status_for: each ragline error maps to its gRPC code; anything else is INTERNAL with a reference.
The interceptor answers request bytes that do not decode INVALID_ARGUMENT."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc import aio
from grpc_status import rpc_status

from ragline import errors
from ragline.grpc_status import ErrorInterceptor, error_from_rpc, status_for
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import ingest_service_pb2_grpc, job_pb2

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.InvalidArgument("config.chunk_size", "must be positive"), "INVALID_ARGUMENT"),
        (errors.PermanentTaskError("cannot parse"), "INVALID_ARGUMENT"),
        (errors.NotFound("job 'x' does not exist"), "NOT_FOUND"),
        (errors.Unauthenticated("no API key"), "UNAUTHENTICATED"),
        (errors.PermissionDenied("lacks admin", scope="admin"), "PERMISSION_DENIED"),
        (errors.FailedPrecondition("the job already completed"), "FAILED_PRECONDITION"),
        (errors.ResourceExhausted("queue full"), "RESOURCE_EXHAUSTED"),
        (errors.TransientError("try later"), "UNAVAILABLE"),
        (errors.BrokerUnavailable("redis down"), "UNAVAILABLE"),
        (errors.StoreUnavailable("milvus down"), "UNAVAILABLE"),
        (errors.DependencyUnavailable("embedder down"), "UNAVAILABLE"),
        (errors.ConfigurationError("set RAGLINE_X"), "FAILED_PRECONDITION"),
        (errors.DependencyFailed("the indexer failed"), "INTERNAL"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v,
)
def test_ragline_errors_map_to_their_code_with_their_message(
    exc: errors.RaglineError, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    got_code, message = status_for(exc)
    assert got_code == grpc.StatusCode[code]
    assert message == str(exc)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_invalid_argument_message_names_the_field() -> None:
    _, message = status_for(errors.InvalidArgument("documents[1].content", "is empty"))
    assert message == "documents[1].content: is empty"


def test_a_plain_ragline_error_is_not_unknown() -> None:
    code, _ = status_for(errors.RaglineError("odd"))
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("secret path /etc/x"), KeyError("k"), ValueError(), ZeroDivisionError("boom")],
    ids=lambda e: type(e).__name__,
)
def test_unexpected_exceptions_are_internal_with_a_logged_reference(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ragline.grpc_status")
    code, message = status_for(exc)
    assert code == grpc.StatusCode.INTERNAL
    assert code != grpc.StatusCode.UNKNOWN
    match = re.search(r"ref ([0-9a-f]{12})", message)
    assert match, message
    ref = match.group(1)
    # The client sees the reference, not the exception's own words.
    assert "secret" not in message
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1
    assert ref in logged[0].getMessage()
    assert logged[0].exc_info is not None
    assert logged[0].exc_info[1] is exc


def test_each_unexpected_error_gets_its_own_reference(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ragline.grpc_status")
    refs = {status_for(RuntimeError("x"))[1] for _ in range(5)}
    assert len(refs) == 5


# -- request bytes that are not the method's request message -------------------------------------


class _Echo(ingest_service_pb2_grpc.IngestServiceServicer):
    """Answers GetJob and WatchJob with the job id it was sent; fails one id on purpose."""

    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        if request.job_id == "missing":
            raise errors.NotFound("job 'missing' does not exist")
        if request.job_id in RAISED:
            raise RAISED[request.job_id]
        return pb.GetJobResponse(job=job_pb2.Job(job_id=request.job_id))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Any
    ) -> AsyncIterator[pb.WatchJobResponse]:
        yield pb.WatchJobResponse(job=job_pb2.Job(job_id=request.job_id))


@pytest.fixture
async def echo() -> AsyncIterator[aio.Channel]:
    """A channel to a local server with the error interceptor, serving _Echo."""
    server = aio.server(interceptors=[ErrorInterceptor()])
    ingest_service_pb2_grpc.add_IngestServiceServicer_to_server(_Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


GARBAGE = [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08", b"\x0a\x02\xc3\x28"]  # the last: bad UTF-8


@pytest.mark.parametrize("raw", GARBAGE, ids=lambda b: b.hex())
async def test_undecodable_unary_request_is_invalid_argument_naming_the_message(
    echo: aio.Channel, raw: bytes
) -> None:
    method = "/ragline.v1.IngestService/GetJob"
    with pytest.raises(aio.AioRpcError) as caught:
        await echo.unary_unary(method)(raw, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert details.startswith("request: could not be decoded as a ragline.v1.GetJobRequest")
    assert method in details


@pytest.mark.parametrize("raw", GARBAGE, ids=lambda b: b.hex())
async def test_undecodable_streaming_request_is_invalid_argument_naming_the_message(
    echo: aio.Channel, raw: bytes
) -> None:
    call = echo.unary_stream("/ragline.v1.IngestService/WatchJob")(raw, timeout=10)
    with pytest.raises(aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ragline.v1.WatchJobRequest" in (caught.value.details() or "")


async def test_decodable_requests_still_reach_the_handler_and_its_errors_map(
    echo: aio.Channel,
) -> None:
    stub = ingest_service_pb2_grpc.IngestServiceStub(echo)
    reply = await stub.GetJob(pb.GetJobRequest(job_id="j-1"), timeout=10)
    assert reply.job.job_id == "j-1"
    assert [r.job.job_id async for r in stub.WatchJob(pb.WatchJobRequest(job_id="j-2"))] == ["j-2"]
    # Empty bytes are a valid (all-default) message, not an undecodable one.
    raw = await echo.unary_unary("/ragline.v1.IngestService/GetJob")(b"", timeout=10)
    assert pb.GetJobResponse.FromString(raw).HasField("job")
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.GetJob(pb.GetJobRequest(job_id="missing"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


# What the echo server raises for these job ids: each error's way out and back in.
RAISED: dict[str, BaseException] = {
    "bad-field": errors.InvalidArgument("documents[2].content_type", "is not one we parse"),
    "full": errors.ResourceExhausted("the ingest queue is full", retry_after_s=1.5),
    "too-big": errors.ResourceExhausted("the document is over 64 MiB"),
    "done": errors.FailedPrecondition("job 'done' is already completed"),
    "absent": errors.NotFound("document 'absent' is not in the index"),
    "busy": errors.StoreUnavailable("milvus did not answer"),
    "bug": RuntimeError("a bug in the indexer"),
    "no-key": errors.Unauthenticated("no API key: send `authorization: Bearer <key>`"),
    "no-scope": errors.PermissionDenied("this key lacks the `admin` scope", scope="admin"),
}


async def _raised(echo: aio.Channel, job_id: str) -> aio.AioRpcError:
    stub = ingest_service_pb2_grpc.IngestServiceStub(echo)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)
    return caught.value


async def test_an_invalid_argument_carries_its_field_as_a_bad_request_detail(
    echo: aio.Channel,
) -> None:
    answer = await _raised(echo, "bad-field")
    status = rpc_status.from_call(answer)
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    (detail,) = status.details
    request = error_details_pb2.BadRequest()
    assert detail.Unpack(request)
    assert [(v.field, v.description) for v in request.field_violations] == [
        ("documents[2].content_type", "is not one we parse")
    ]
    assert answer.details() == "documents[2].content_type: is not one we parse"


async def test_a_full_queue_says_when_to_retry(echo: aio.Channel) -> None:
    status = rpc_status.from_call(await _raised(echo, "full"))
    assert status is not None
    (detail,) = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info) and info.retry_delay.ToNanoseconds() == 1_500_000_000
    # Over-size: retrying cannot help, so no RetryInfo.
    assert rpc_status.from_call(await _raised(echo, "too-big")) is None


@pytest.mark.parametrize(
    ("job_id", "back"),
    [
        ("bad-field", errors.InvalidArgument),
        ("full", errors.ResourceExhausted),
        ("too-big", errors.ResourceExhausted),
        ("done", errors.FailedPrecondition),
        ("absent", errors.NotFound),
        ("busy", errors.DependencyUnavailable),
        ("bug", errors.DependencyFailed),
        ("no-key", errors.Unauthenticated),
        ("no-scope", errors.PermissionDenied),
    ],
)
async def test_a_status_comes_back_as_the_error_it_went_out_as(
    echo: aio.Channel, job_id: str, back: type[errors.RaglineError]
) -> None:
    err = error_from_rpc(await _raised(echo, job_id), "indexer", "127.0.0.1:50054")
    assert type(err) is back
    if isinstance(err, errors.InvalidArgument):
        assert (err.field, err.problem) == ("documents[2].content_type", "is not one we parse")
    if job_id == "full":
        assert isinstance(err, errors.ResourceExhausted) and err.retry_after_s == 1.5
    if job_id == "too-big":
        assert isinstance(err, errors.ResourceExhausted) and err.retry_after_s is None
    if job_id in ("no-key", "no-scope"):
        assert str(err) == str(RAISED[job_id])
    # Only a service that did not answer is one to go and start.
    assert ("ragline serve indexer" in str(err)) is (back is errors.DependencyUnavailable)
    assert status_for(err)[0] != grpc.StatusCode.UNKNOWN


async def test_a_dependency_that_is_not_there_is_unavailable() -> None:
    async with aio.insecure_channel("127.0.0.1:1") as channel:
        stub = ingest_service_pb2_grpc.IngestServiceStub(channel)
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.GetJob(pb.GetJobRequest(job_id="x"), timeout=5)
    err = error_from_rpc(caught.value, "embedder", "127.0.0.1:1")
    assert isinstance(err, errors.DependencyUnavailable) and err.retryable
    assert "ragline serve embedder" in str(err)
