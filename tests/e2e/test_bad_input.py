"""Bad input through the real stack: every refusal is INVALID_ARGUMENT or NOT_FOUND naming the
field, never UNKNOWN or INTERNAL, and a batch with one bad document queues nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from ragline_client import (
    Document,
    InvalidArgumentError,
    JobState,
    NotFoundError,
    RaglineClient,
)
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import ingest_service_pb2_grpc as pb_grpc
from ragline_client.v1 import job_pb2
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300), pytest.mark.xdist_group(__name__)]

GOOD_TEXT = "Lighthouse keepers trimmed the wicks at dusk and logged every passing ship.\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stub(stack: Stack) -> Iterator[pb_grpc.IngestServiceStub]:
    with grpc.insecure_channel(stack.gateway) as channel:
        yield pb_grpc.IngestServiceStub(channel)


def refused_by_client(client: RaglineClient, **kwargs: Any) -> InvalidArgumentError:
    kwargs.setdefault("document_id", unique("bad"))
    with pytest.raises(InvalidArgumentError) as info:
        client.ingest(**kwargs)
    return info.value


def ingest_request(**changes: Any) -> pb.IngestRequest:
    fields: dict[str, Any] = {
        "document_id": unique("raw"),
        "content": GOOD_TEXT.encode(),
        "content_type": "text/plain",
    }
    fields.update(changes)
    return pb.IngestRequest(**fields)


def status_of(call: Any, request: Any, *, stream: bool = False) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        result = call(request, timeout=30)
        if stream:
            list(result)  # the status comes with the first read
    err: Any = info.value
    return err.code(), err.details()


# -- through the Python client -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"content": b""}, "content"),
        ({"content": GOOD_TEXT, "content_type": "application/msword"}, "content_type"),
        ({"content": b"caf\xe9 au lait, not UTF-8", "content_type": "text/plain"}, "content"),
        ({"content": GOOD_TEXT, "chunk_size": 100, "chunk_overlap": 100}, "config.chunk_overlap"),
        ({"content": GOOD_TEXT, "chunk_overlap": 300}, "config.chunk_overlap"),
        ({"content": GOOD_TEXT, "chunk_size": 255}, "config.chunk_size"),
        ({"content": GOOD_TEXT, "embedding_model": "nope/model"}, "config.embedding_model"),
        ({"content": b"plain words", "content_type": "application/pdf"}, "content"),
    ],
    ids=[
        "empty",
        "unsupported-type",
        "invalid-utf8",
        "overlap-equals-size",
        "overlap-above-default-size",
        "size-above-model-limit",
        "unknown-model",
        "not-a-pdf",
    ],
)
def test_client_gets_invalid_argument_naming_the_field(
    client: RaglineClient, kwargs: dict[str, Any], field: str
) -> None:
    err = refused_by_client(client, **kwargs)
    assert err.code == "INVALID_ARGUMENT"
    assert err.details.startswith(f"{field}: "), err.details
    assert field in str(err)


def test_chunk_size_error_says_the_limit(client: RaglineClient) -> None:
    err = refused_by_client(client, content=GOOD_TEXT, chunk_size=255)
    assert "254" in err.details


def test_batch_with_one_bad_document_names_it_and_queues_nothing(client: RaglineClient) -> None:
    good_id, bad_id, other_id = unique("good"), unique("bad"), unique("other")
    docs = [
        Document(content=GOOD_TEXT, document_id=good_id),
        Document(content=GOOD_TEXT, document_id=bad_id, chunk_size=50, chunk_overlap=60),
        Document(content=GOOD_TEXT, document_id=other_id),
    ]
    with pytest.raises(InvalidArgumentError) as info:
        client.ingest_batch(docs)
    assert info.value.details.startswith("documents[1].config.chunk_overlap: "), info.value.details
    for doc_id in (good_id, bad_id, other_id):
        with pytest.raises(NotFoundError):
            client.get_document(doc_id)


def test_unknown_job_is_not_found_for_get_and_watch(client: RaglineClient) -> None:
    job_id = uuid.uuid4().hex
    with pytest.raises(NotFoundError) as got:
        client.get_job(job_id)
    assert got.value.code == "NOT_FOUND"
    assert job_id in got.value.details
    with pytest.raises(NotFoundError) as watched:
        list(client.watch(job_id, timeout=30))
    assert watched.value.code == "NOT_FOUND"


def test_unknown_document_is_not_found(client: RaglineClient) -> None:
    with pytest.raises(NotFoundError):
        client.get_document(unique("never-ingested"))


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_search_query(client: RaglineClient, query: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.search(query)
    assert info.value.details.startswith("query: ")


def test_search_top_k_out_of_range(client: RaglineClient) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.search("lighthouses", top_k=1001)
    assert info.value.details.startswith("top_k: ")


# -- raw gRPC: exact status codes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"content": b""}, "content"),
        ({"content_type": "image/png"}, "content_type"),
        ({"content": b"caf\xe9"}, "content"),
        # A 3-byte sequence (U+20AC, the euro sign) missing its last byte, inside valid text.
        ({"content": b"The price is 5 \xe2\x82 per unit, paid monthly."}, "content"),
        ({"document_id": ""}, "document_id"),
        ({"document_id": "a\x00b"}, "document_id"),
        ({"document_id": "x" * 513}, "document_id"),
        ({"config": job_pb2.ChunkingConfig(vector_dimension=512)}, "config.vector_dimension"),
        ({"config": job_pb2.ChunkingConfig(chunk_size=0)}, "config.chunk_size"),
        ({"config": job_pb2.ChunkingConfig(chunk_size=-3)}, "config.chunk_size"),
        (
            {"config": job_pb2.ChunkingConfig(chunk_size=64, chunk_overlap=64)},
            "config.chunk_overlap",
        ),
        (
            {"config": job_pb2.ChunkingConfig(embedding_model="nope/model")},
            "config.embedding_model",
        ),
        (
            {"metadata": job_pb2.DocumentMetadata(attributes={f"k{i}": "v" for i in range(65)})},
            "metadata.attributes",
        ),
    ],
    ids=[
        "empty",
        "unsupported-type",
        "invalid-utf8",
        "truncated-3-byte-utf8",
        "empty-id",
        "control-char-id",
        "oversize-id",
        "vector-dimension-512",
        "chunk-size-0",
        "chunk-size-negative",
        "overlap-equals-size",
        "unknown-model",
        "too-many-attributes",
    ],
)
def test_raw_ingest_is_invalid_argument(
    stub: pb_grpc.IngestServiceStub, request_fields: dict[str, Any], field: str
) -> None:
    code, details = status_of(stub.Ingest, ingest_request(**request_fields))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert details.startswith(f"{field}: "), details


def test_truncated_utf8_names_the_offset(stub: pb_grpc.IngestServiceStub) -> None:
    content = b"The price is 5 \xe2\x82 per unit."
    _, details = status_of(stub.Ingest, ingest_request(content=content))
    offset = content.index(b"\xe2")
    assert f"offset {offset}" in details


def test_raw_batch_names_the_document_index(stub: pb_grpc.IngestServiceStub) -> None:
    request = pb.IngestBatchRequest(
        documents=[ingest_request(), ingest_request(content_type="text/rtf")]
    )
    code, details = status_of(stub.IngestBatch, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("documents[1].content_type: "), details


def test_raw_empty_batch_is_invalid_argument(stub: pb_grpc.IngestServiceStub) -> None:
    code, details = status_of(stub.IngestBatch, pb.IngestBatchRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("documents: ")


def test_raw_unknown_job_is_not_found(stub: pb_grpc.IngestServiceStub) -> None:
    job_id = uuid.uuid4().hex
    code, _ = status_of(stub.GetJob, pb.GetJobRequest(job_id=job_id))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = status_of(stub.WatchJob, pb.WatchJobRequest(job_id=job_id), stream=True)
    assert code == grpc.StatusCode.NOT_FOUND


def test_raw_empty_job_id_is_invalid_argument(stub: pb_grpc.IngestServiceStub) -> None:
    code, details = status_of(stub.GetJob, pb.GetJobRequest(job_id=""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("job_id: ")
    code, details = status_of(stub.WatchJob, pb.WatchJobRequest(job_id=""), stream=True)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("job_id: ")


def test_raw_empty_search_is_invalid_argument(stub: pb_grpc.IngestServiceStub) -> None:
    code, details = status_of(stub.Search, pb.SearchRequest(query=""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("query: ")


def test_raw_unknown_document_is_not_found(stub: pb_grpc.IngestServiceStub) -> None:
    code, _ = status_of(stub.GetDocument, pb.GetDocumentRequest(document_id=unique("nope")))
    assert code == grpc.StatusCode.NOT_FOUND


# -- bad data found after acceptance -----------------------------------------------------------


def test_a_pdf_corrupt_after_its_header_fails_in_the_chunk_stage(client: RaglineClient) -> None:
    content = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF garbage, no xref, no objects\n"
    job = client.ingest(content, document_id=unique("corrupt"), content_type="application/pdf")
    assert job.state is JobState.ACCEPTED
    final = client.wait(job.job_id, timeout=120)
    assert final.state is JobState.FAILED, final
    assert "PDF" in final.last_error
    assert final.last_error_stage == "chunk"
    # Bad data is permanent: dead-lettered at once, not retried.
    assert final.attempts == 1
    assert final.finish_time is not None
