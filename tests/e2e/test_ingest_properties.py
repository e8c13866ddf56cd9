"""Property test: whatever a client sends, Ingest answers OK, INVALID_ARGUMENT or
RESOURCE_EXHAUSTED with a message; never UNKNOWN, INTERNAL or a dropped connection."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import ingest_service_pb2_grpc, job_pb2
from tests.conftest import REDIS_URL
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.xdist_group(__name__)]

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ingest_service_pb2_grpc.IngestServiceStub]:
    # The gateway alone, with a small size limit so RESOURCE_EXHAUSTED is reachable.
    stack = Stack(tmp_path_factory.mktemp("props"), REDIS_URL, max_document_bytes="4096")
    stack.start("gateway")
    with grpc.insecure_channel(stack.gateway) as channel:
        yield ingest_service_pb2_grpc.IngestServiceStub(channel)
    stack.stop_all()


text = st.text(max_size=40)
content_types = (
    st.sampled_from(
        [
            "text/plain",
            "text/markdown",
            "text/html",
            "application/pdf",
            "TEXT/PLAIN; charset=utf-8",
            "text/plain; charset=latin-1",
            "image/png",
            "",
            "text/",
            ";;",
        ]
    )
    | text
)
contents = st.binary(max_size=6000) | st.text(max_size=3000).map(
    lambda s: s.encode("utf-8", "surrogatepass")
)
optional_int = st.none() | st.integers(min_value=-(2**31), max_value=2**31 - 1)


@st.composite
def ingest_requests(draw: st.DrawFn) -> pb.IngestRequest:
    config = job_pb2.ChunkingConfig(
        embedding_model=draw(
            st.sampled_from(["", "sentence-transformers/all-MiniLM-L6-v2", "x/y"]) | text
        ),
        vector_dimension=draw(st.sampled_from([0, 384, 512]) | st.integers(-(2**31), 2**31 - 1)),
    )
    size, overlap = draw(optional_int), draw(optional_int)
    if size is not None:
        config.chunk_size = size
    if overlap is not None:
        config.chunk_overlap = overlap
    metadata = job_pb2.DocumentMetadata(
        uploaded_by=draw(text),
        original_filename=draw(text),
        attributes=draw(st.dictionaries(text, text, max_size=4)),
    )
    return pb.IngestRequest(
        document_id=draw(st.text(max_size=600)),
        content=draw(contents),
        content_type=draw(content_types),
        metadata=metadata,
        config=config,
        request_id=draw(st.text(max_size=140)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=ingest_requests())
def test_any_ingest_request_gets_ok_or_a_clear_client_error(
    gateway, request: pb.IngestRequest
) -> None:
    try:
        reply = gateway.Ingest(request, timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() in ALLOWED, f"{exc.code()}: {exc.details()}"
        assert exc.details(), "an error must say what is wrong"
        return
    assert reply.job.job_id
    assert reply.job.state == job_pb2.JOB_STATE_ACCEPTED or reply.job.request_id


@settings(max_examples=40, deadline=None)
@given(requests=st.lists(ingest_requests(), min_size=1, max_size=5))
def test_any_ingest_batch_gets_ok_or_a_clear_client_error(
    gateway, requests: list[pb.IngestRequest]
) -> None:
    try:
        reply = gateway.IngestBatch(pb.IngestBatchRequest(documents=requests), timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() in ALLOWED, f"{exc.code()}: {exc.details()}"
        assert exc.details()
        return
    assert len(reply.jobs) == len(requests)
