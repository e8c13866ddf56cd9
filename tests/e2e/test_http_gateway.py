"""The gateway's HTTP/JSON API on the whole stack (each service its own process, real Redis,
Milvus Lite and model): an upload watched to completion over server-sent events and found by
search, the other routes, errors in the AIP-193 shape, and CORS for the stack's page origin."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from ragline.http.openapi import build_document
from tests.stack import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.parametrize("stack", ["redis"], indirect=True),
]

TERMINAL = {"JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.http_url, timeout=60) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def watch(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """Every job event of the job's stream, read until the server ends it."""
    events = []
    with connect_sse(http, "GET", f"/v1/jobs/{job_id}:watch") as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            assert sse.event == "job", sse.data
            events.append(json.loads(sse.data))
    return events


def ingest_json(http: httpx.Client, document_id: str, text: str) -> dict[str, Any]:
    reply = http.post(
        "/v1/documents",
        json={
            "documentId": document_id,
            "content": base64.b64encode(text.encode()).decode(),
            "contentType": "text/plain",
        },
    )
    assert reply.status_code == 200, reply.text
    job: dict[str, Any] = reply.json()["job"]
    return job


def assert_error(reply: httpx.Response, status: int, code: str, *words: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = reply.json()["error"]
    assert error["code"] == status and error["status"] == code
    for word in words:
        assert word in error["message"]
    return error


def test_an_upload_is_watched_to_completion_over_sse_then_found(http: httpx.Client) -> None:
    document_id = unique("http-upload")
    word = uuid.uuid4().hex[:10]
    text = f"# Field notes\n\nThe {word} heron waits in the reeds at dawn, then strikes.\n"
    reply = http.post(
        "/v1/documents",
        data={"documentId": document_id, "metadata": json.dumps({"uploadedBy": "http-test"})},
        files={"file": ("notes.md", text.encode(), "text/markdown")},
    )
    assert reply.status_code == 200, reply.text
    job = reply.json()["job"]
    assert job["documentId"] == document_id and job["state"] not in TERMINAL

    events = watch(http, job["jobId"])
    assert events, "the stream ended without an event"
    assert {e["jobId"] for e in events} == {job["jobId"]}
    assert events[-1]["state"] == "JOB_STATE_COMPLETED", events[-1]
    assert [e for e in events if e["state"] in TERMINAL] == events[-1:]
    assert int(events[-1]["progress"]["chunksIndexed"]) >= 1

    found = http.post("/v1/search", json={"query": f"{word} heron in the reeds", "topK": 3})
    assert found.status_code == 200, found.text
    hits = [h for h in found.json()["hits"] if h["documentId"] == document_id]
    assert hits, found.json()
    assert word in hits[0]["text"]
    assert hits[0]["metadata"]["originalFilename"] == "notes.md"
    assert hits[0]["metadata"]["uploadedBy"] == "http-test"


def test_json_ingest_then_get_and_delete_the_document(http: httpx.Client) -> None:
    document_id = unique("http-json")
    job = ingest_json(http, document_id, "Otters hold hands while they sleep in kelp beds.")
    assert watch(http, job["jobId"])[-1]["state"] == "JOB_STATE_COMPLETED"

    got = http.get(f"/v1/jobs/{job['jobId']}")
    assert got.status_code == 200 and got.json()["job"]["state"] == "JOB_STATE_COMPLETED"
    document = http.get(f"/v1/documents/{document_id}")
    assert document.status_code == 200, document.text
    assert document.json() == {
        "documentId": document_id,
        "liveVersion": "1",
        "latestVersion": "1",
        "chunkCount": document.json()["chunkCount"],
    }
    assert int(document.json()["chunkCount"]) >= 1

    deleted = http.delete(f"/v1/documents/{document_id}")
    assert deleted.status_code == 200 and int(deleted.json()["chunksDeleted"]) >= 1
    assert_error(http.get(f"/v1/documents/{document_id}"), 404, "NOT_FOUND", document_id)


def test_a_batch_and_a_path_segment_with_a_slash(http: httpx.Client) -> None:
    ids = [unique("http/batch"), unique("http:batch")]
    reply = http.post(
        "/v1/documents:batch",
        json={
            "documents": [
                {
                    "documentId": i,
                    "content": base64.b64encode(b"Moths steer by the moon.").decode(),
                    "contentType": "text/plain",
                }
                for i in ids
            ]
        },
    )
    assert reply.status_code == 200, reply.text
    jobs = reply.json()["jobs"]
    assert [j["documentId"] for j in jobs] == ids
    for job in jobs:
        assert watch(http, job["jobId"])[-1]["state"] == "JOB_STATE_COMPLETED"
    for document_id in ids:
        encoded = httpx.URL(f"/v1/documents/{document_id.replace('/', '%2F')}")
        assert http.get(encoded).json()["documentId"] == document_id


def test_cancel_a_running_job_and_not_a_completed_one(http: httpx.Client) -> None:
    # Long enough that its embedding is still under way when the cancel arrives.
    text = " ".join(
        f"Sentence {i} tells of tides, gulls and a lighthouse keeper." for i in range(3000)
    )
    job = ingest_json(http, unique("http-cancel"), text)
    cancelled = http.post(f"/v1/jobs/{job['jobId']}:cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["job"]["state"] == "JOB_STATE_CANCELLED"
    events = watch(http, job["jobId"])
    assert [e["state"] for e in events] == ["JOB_STATE_CANCELLED"]

    done = ingest_json(http, unique("http-done"), "A short one.")
    assert watch(http, done["jobId"])[-1]["state"] == "JOB_STATE_COMPLETED"
    assert_error(
        http.post(f"/v1/jobs/{done['jobId']}:cancel"),
        400,
        "FAILED_PRECONDITION",
        "already completed",
    )


def test_dead_letter_routes_answer_with_defaults_printed(http: httpx.Client) -> None:
    listed = http.get("/v1/deadLetters", params={"stage": "STAGE_INDEX", "pageSize": 10})
    assert listed.status_code == 200, listed.text
    assert set(listed.json()) == {"deadLetters", "nextPageToken"}
    for verb, count in (("requeue", "requeued"), ("purge", "purged")):
        reply = http.post(
            f"/v1/deadLetters:{verb}",
            json={"stage": "STAGE_INDEX", "deadLetterIds": ["0-1"]},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {count: 0}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"documentId": "", "content": "aGk=", "contentType": "text/plain"}, "document_id"),
        ({"documentId": "x", "content": "aGk=", "contentType": "image/gif"}, "content_type"),
        ({"documentId": "x", "contents": "aGk="}, "contents"),
        ({"documentId": "x", "config": {"chunkSize": "big"}}, "config.chunkSize"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    error = assert_error(http.post("/v1/documents", json=body), 400, "INVALID_ARGUMENT")
    (detail,) = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"][0]["field"] == field
    assert detail["fieldViolations"][0]["description"]


def test_transport_errors_are_json_too(http: httpx.Client, stack: Stack) -> None:
    assert_error(http.post("/v1/search", content=b"{not json"), 400, "INVALID_ARGUMENT", "JSON")
    assert_error(http.get("/v1/jobs/no-such-job"), 404, "NOT_FOUND", "no-such-job")
    assert_error(http.get("/v1/jobs/no-such-job:watch"), 404, "NOT_FOUND", "no-such-job")
    assert_error(http.get("/v2/nothing"), 404, "NOT_FOUND", "/openapi.json")
    wrong = assert_error(http.put("/v1/search"), 405, "UNIMPLEMENTED", "takes POST")
    assert wrong["message"].startswith("/v1/search does not take PUT")
    limit = 64 * 1024 * 1024 // 3 * 4 + 2 * 1024 * 1024  # past the default body limit
    too_large = http.post(
        "/v1/documents", content=b" " * limit, headers={"content-type": "application/json"}
    )
    assert_error(too_large, 413, "RESOURCE_EXHAUSTED", "RAGLINE_MAX_DOCUMENT_BYTES")


def test_health_and_the_served_openapi_document(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "SERVING"}
    assert http.get("/openapi.json").json() == build_document()


def test_cors_allows_the_page_origin_only(http: httpx.Client, stack: Stack) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    allowed = http.options("/v1/documents", headers={"Origin": stack.web_origin, **preflight})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == stack.web_origin
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"]

    other = "http://127.0.0.1:1"
    refused = http.options("/v1/documents", headers={"Origin": other, **preflight})
    assert_error(refused, 403, "PERMISSION_DENIED", "RAGLINE_HTTP_CORS_ORIGINS")
    assert "access-control-allow-origin" not in refused.headers

    page = http.get("/v1/jobs/no-such-job", headers={"Origin": stack.web_origin})
    assert page.headers["access-control-allow-origin"] == stack.web_origin
    assert (
        "access-control-allow-origin" not in http.get("/healthz", headers={"Origin": other}).headers
    )
    # The event stream carries the header too, or a page's EventSource could not read it.
    job = ingest_json(http, unique("http-cors"), "Swifts sleep on the wing.")
    with http.stream(
        "GET", f"/v1/jobs/{job['jobId']}:watch", headers={"Origin": stack.web_origin}
    ) as s:
        assert s.headers["access-control-allow-origin"] == stack.web_origin
        s.read()
