"""ragline.http.routes: one route per IngestService RPC, each path filling real request fields;
and ragline.http.messages building the request messages from what a request carries."""

from __future__ import annotations

import base64

import pytest

from ragline.errors import InvalidArgument
from ragline.http.messages import build_request, parse_json_body, to_json, upload_request
from ragline.http.routes import ROUTES, SERVICE, Body, Route
from ragline.v1 import ingest_service_pb2 as pb
from ragline.v1 import job_pb2

pytestmark = pytest.mark.unit

BY_RPC = {r.rpc: r for r in ROUTES}


def test_every_rpc_of_the_service_has_one_route_and_the_table_names_no_other() -> None:
    rpcs = [m.name for m in SERVICE.methods]
    missing = [rpc for rpc in rpcs if rpc not in BY_RPC]
    assert not missing, f"add these IngestService RPCs to ragline.http.routes.ROUTES: {missing}"
    assert sorted(r.rpc for r in ROUTES) == sorted(rpcs)
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.rpc)
def test_a_route_fills_only_fields_its_request_has(route: Route) -> None:
    fields = {f.json_name for f in route.request.fields}
    assert set(route.path_fields) <= fields
    assert set(route.query_fields) <= fields
    # GET and DELETE take no body; a POST takes one unless its path holds the whole request.
    if route.method in ("GET", "DELETE"):
        assert route.body is Body.NONE
    else:
        assert (route.body is Body.NONE) == (fields == set(route.path_fields))
    # A streaming RPC is a GET: a browser's EventSource can only GET.
    assert not route.streaming or route.method == "GET"


def test_the_paths_are_those_the_contract_gives() -> None:
    assert {(r.method, r.path): r.rpc for r in ROUTES} == {
        ("POST", "/v1/documents"): "Ingest",
        ("POST", "/v1/documents:batch"): "IngestBatch",
        ("GET", "/v1/documents/{documentId}"): "GetDocument",
        ("DELETE", "/v1/documents/{documentId}"): "DeleteDocument",
        ("GET", "/v1/jobs/{jobId}"): "GetJob",
        ("GET", "/v1/jobs/{jobId}:watch"): "WatchJob",
        ("POST", "/v1/jobs/{jobId}:cancel"): "CancelJob",
        ("POST", "/v1/search"): "Search",
        ("GET", "/v1/deadLetters"): "ListDeadLetters",
        ("POST", "/v1/deadLetters:requeue"): "RequeueDeadLetters",
        ("POST", "/v1/deadLetters:purge"): "PurgeDeadLetters",
    }


def test_path_and_query_fill_the_request_in_either_spelling() -> None:
    listed = build_request(
        BY_RPC["ListDeadLetters"],
        {},
        [("stage", "STAGE_EMBED"), ("page_size", "5"), ("pageToken", "t")],
        None,
    )
    assert listed == pb.ListDeadLettersRequest(
        stage=job_pb2.STAGE_EMBED, page_size=5, page_token="t"
    )
    got = build_request(BY_RPC["GetDocument"], {"documentId": "a/b:c"}, [], None)
    assert got == pb.GetDocumentRequest(document_id="a/b:c")


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ([("stage", "NOPE")], "stage", "Invalid enum value NOPE"),
        ([("pageSize", "many")], "pageSize", "invalid literal"),
        ([("limit", "1")], "limit", "takes stage, pageSize, pageToken"),
        ([("stage", "STAGE_CHUNK"), ("stage", "STAGE_EMBED")], "stage", "more than once"),
    ],
)
def test_a_bad_query_parameter_is_named(
    query: list[tuple[str, str]], field: str, words: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        build_request(BY_RPC["ListDeadLetters"], {}, query, None)
    assert caught.value.field == field and words in caught.value.problem


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"{", "body", "not valid JSON"),
        (b"[1]", "body", "must be a JSON object, not list"),
        (b'{"query": "x", "topK": "five"}', "topK", "invalid literal"),
        (b'{"query": "x", "limit": 3}', "limit", 'no field named "limit"'),
        (b'{"query": 3}', "query", "expected string"),
    ],
)
def test_a_bad_body_is_named(body: bytes, field: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        build_request(BY_RPC["Search"], {}, [], parse_json_body(body))
    assert caught.value.field == field and words in caught.value.problem


def test_a_body_cannot_contradict_the_path() -> None:
    with pytest.raises(InvalidArgument, match="given in the path"):
        build_request(BY_RPC["GetJob"], {"jobId": "a"}, [], {"jobId": "b"})


def test_json_ingest_takes_base64_content_and_both_field_spellings() -> None:
    body = {
        "document_id": "d",
        "content": base64.b64encode(b"hi").decode(),
        "contentType": "text/plain",
    }
    assert build_request(BY_RPC["Ingest"], {}, [], body) == pb.IngestRequest(
        document_id="d", content=b"hi", content_type="text/plain"
    )


def test_an_upload_takes_its_name_and_type_from_the_file_part_unless_given() -> None:
    plain = upload_request(b"# hi", "notes.md", "application/octet-stream", {"documentId": "d"})
    assert plain.content_type == "text/markdown"  # from the extension: the part said nothing
    assert plain.metadata.original_filename == "notes.md"
    given = upload_request(
        b"hi",
        "x.bin",
        "text/html",
        {
            "documentId": "d",
            "contentType": "text/plain",
            "metadata": '{"originalFilename": "kept.txt", "attributes": {"k": "v"}}',
            "config": '{"chunkSize": 64}',
        },
    )
    assert given.content_type == "text/plain"
    assert given.metadata.original_filename == "kept.txt"
    assert dict(given.metadata.attributes) == {"k": "v"}
    assert given.config.chunk_size == 64


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"documentId": "d", "metadata": "{"}, "metadata"),
        ({"documentId": "d", "config": '{"chunkSize": "big"}'}, "config.chunkSize"),
        ({"documentId": "d", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_upload_part_is_named(fields: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        upload_request(b"hi", "a.txt", "text/plain", fields)
    assert caught.value.field == field


def test_answers_print_default_values() -> None:
    assert to_json(pb.SearchResponse()) == {"hits": []}
    assert to_json(pb.RequeueDeadLettersResponse()) == {"requeued": 0}
    assert to_json(pb.DeleteDocumentResponse(chunks_deleted=3)) == {"chunksDeleted": "3"}
