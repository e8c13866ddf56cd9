"""The one table of the HTTP/JSON API: each route's method and path, the IngestService RPC it
calls, and where that RPC's request message comes from (the path, the query, the body).

Pure description, no transport: ragline.http.app serves it with aiohttp, ragline.http.openapi
documents it, and tests/unit/test_http_routes.py fails when an RPC has no route. Paths follow
Google's HTTP conventions (AIP-136 custom methods as `:verb`); `{name}` is a path segment that
fills the request field whose proto3 JSON name is `name`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from google.protobuf.descriptor import Descriptor, MethodDescriptor

from ragline.v1 import ingest_service_pb2

SERVICE = ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"]


class Body(Enum):
    """What a route's request body holds."""

    NONE = "none"  # no body: the path and the query fill the request
    JSON = "json"  # the request message as proto3 JSON
    JSON_OR_UPLOAD = "json or multipart"  # that, or multipart/form-data with a `file` part


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    rpc: str
    body: Body
    summary: str

    @property
    def descriptor(self) -> MethodDescriptor:
        return SERVICE.methods_by_name[self.rpc]

    @property
    def request(self) -> Descriptor:
        return self.descriptor.input_type

    @property
    def response(self) -> Descriptor:
        return self.descriptor.output_type

    @property
    def streaming(self) -> bool:
        """Server-streaming RPCs are served as server-sent events."""
        return bool(self.descriptor.server_streaming)

    @property
    def path_fields(self) -> tuple[str, ...]:
        """The request fields (by JSON name) that the path fills, in order."""
        return tuple(re.findall(r"{(\w+)}", self.path))

    @property
    def query_fields(self) -> tuple[str, ...]:
        """The request fields (by JSON name) a query parameter may fill: without a body, every
        field the path does not."""
        if self.body is not Body.NONE:
            return ()
        return tuple(
            f.json_name for f in self.request.fields if f.json_name not in self.path_fields
        )

    @property
    def operation_id(self) -> str:
        return self.rpc[0].lower() + self.rpc[1:]


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/documents",
        "Ingest",
        Body.JSON_OR_UPLOAD,
        "Ingest one document: returns its job at once; the pipeline works on it in the background",
    ),
    Route(
        "POST",
        "/v1/documents:batch",
        "IngestBatch",
        Body.JSON,
        "Ingest many documents in one call, all or none",
    ),
    Route(
        "GET",
        "/v1/documents/{documentId}",
        "GetDocument",
        Body.NONE,
        "A document's live and latest versions and its chunk count",
    ),
    Route(
        "DELETE",
        "/v1/documents/{documentId}",
        "DeleteDocument",
        Body.NONE,
        "Delete every chunk of a document",
    ),
    # :watch before the plain GET: a route matches in this order.
    Route(
        "GET",
        "/v1/jobs/{jobId}:watch",
        "WatchJob",
        Body.NONE,
        "The job's updates as server-sent events (`event: job`) until it ends",
    ),
    Route("GET", "/v1/jobs/{jobId}", "GetJob", Body.NONE, "A job's state and progress"),
    Route(
        "POST",
        "/v1/jobs/{jobId}:cancel",
        "CancelJob",
        Body.NONE,
        "Cancel a job and remove what it indexed",
    ),
    Route("POST", "/v1/search", "Search", Body.JSON, "The chunks nearest to a query"),
    Route(
        "GET",
        "/v1/deadLetters",
        "ListDeadLetters",
        Body.NONE,
        "One page of a stage's dead letters",
    ),
    Route(
        "POST",
        "/v1/deadLetters:requeue",
        "RequeueDeadLetters",
        Body.JSON,
        "Put dead letters back on their stage's queue",
    ),
    Route(
        "POST",
        "/v1/deadLetters:purge",
        "PurgeDeadLetters",
        Body.JSON,
        "Delete dead letters for good",
    ),
)

# Answered without an API key, like gRPC's health and reflection services.
HEALTH_PATH = "/healthz"
OPENAPI_PATH = "/openapi.json"
