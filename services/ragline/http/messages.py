"""Request messages from what an HTTP request carries (path, query, JSON body, an uploaded file)
and response messages to JSON, by the proto3 JSON mapping (google.protobuf.json_format). No
transport here: ragline.http.app hands in the pieces. Every problem is InvalidArgument naming
the field or parameter at fault."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from ragline.content_types import content_type_for_path
from ragline.errors import InvalidArgument
from ragline.http.routes import Route
from ragline.v1 import ingest_service_pb2, job_pb2

# The field a json_format.ParseError names: the innermost "Failed to parse X field", or the
# unknown one.
_FAILED_FIELD = re.compile(r'Failed to parse (\w+) field|has no field named "([^"]*)"')


def request_class(route: Route) -> type[Message]:
    cls: type[Message] = getattr(ingest_service_pb2, route.request.name)
    return cls


def parse_json_body(raw: bytes, what: str = "body") -> dict[str, Any]:
    """A JSON object from a request body (or a form part named `what`)."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(what, f"is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidArgument(what, f"must be a JSON object, not {type(value).__name__}")
    return value


def fill(message: Message, values: Mapping[str, Any], where: str = "") -> None:
    """Parses proto3 JSON `values` into `message`; InvalidArgument naming the field that is
    unknown or of the wrong type (under `where`, e.g. "metadata")."""
    try:
        json_format.ParseDict(dict(values), message)
    except (json_format.ParseError, TypeError, ValueError, AttributeError) as exc:
        text = str(exc).split("\n")[0]
        names = [a or b for a, b in _FAILED_FIELD.findall(text)]
        field = ".".join([*([where] if where else []), *names]) or where or "body"
        raise InvalidArgument(
            field, f"{text} (proto3 JSON of {message.DESCRIPTOR.full_name})"
        ) from None


def build_request(
    route: Route,
    path: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: Mapping[str, Any] | None,
) -> Message:
    """The route's request message from its path segments, its query parameters (routes without
    a body) and its JSON body (routes with one)."""
    values: dict[str, Any] = dict(body or {})
    if query:
        values.update(_query_values(route, query))
    for name in route.path_fields:
        if name in values and values[name] != path[name]:
            raise InvalidArgument(name, "is given in the path; leave it out of the body")
        values[name] = path[name]
    message = request_class(route)()
    fill(message, values)
    return message


def _query_values(route: Route, query: Sequence[tuple[str, str]]) -> dict[str, Any]:
    fields = {f.json_name: f for f in route.request.fields if f.json_name in route.query_fields}
    by_name = {**{f.name: f for f in fields.values()}, **fields}
    values: dict[str, Any] = {}
    for name, value in query:
        field = by_name.get(name)
        if field is None:
            takes = ", ".join(fields) or "no query parameters"
            raise InvalidArgument(
                name, f"is not a query parameter of {route.path}; it takes {takes}"
            )
        if field.is_repeated:
            values.setdefault(field.json_name, []).append(value)
        elif field.json_name in values:
            raise InvalidArgument(name, "is given more than once; give it once")
        else:
            values[field.json_name] = value
    return values


def upload_request(
    content: bytes,
    filename: str | None,
    part_type: str | None,
    fields: Mapping[str, str],
) -> ingest_service_pb2.IngestRequest:
    """An IngestRequest from a multipart upload: the `file` part's bytes, and the text parts
    documentId, contentType, requestId, metadata and config (the last two as JSON). The file's
    name and Content-Type fill metadata.originalFilename and contentType unless given."""
    known = {"documentId", "contentType", "requestId", "metadata", "config"}
    aliases = {
        "document_id": "documentId",
        "content_type": "contentType",
        "request_id": "requestId",
    }
    values: dict[str, str] = {}
    for name, value in fields.items():
        key = aliases.get(name, name)
        if key not in known:
            raise InvalidArgument(
                name,
                "is not a part of an upload; send `file` and optionally documentId, "
                "contentType, requestId, metadata (JSON) and config (JSON)",
            )
        values[key] = value
    request = ingest_service_pb2.IngestRequest(
        document_id=values.get("documentId", ""),
        request_id=values.get("requestId", ""),
        content=content,
        content_type=values.get("contentType") or _part_type(part_type, filename),
    )
    if "metadata" in values:
        fill(request.metadata, parse_json_body(values["metadata"].encode(), "metadata"), "metadata")
    if "config" in values:
        fill(request.config, parse_json_body(values["config"].encode(), "config"), "config")
    if filename and not request.metadata.original_filename:
        request.metadata.original_filename = filename
    return request


def _part_type(part_type: str | None, filename: str | None) -> str:
    """The upload part's Content-Type; when it says nothing (a client that did not know sends
    application/octet-stream), the type the file name's extension implies."""
    if part_type and part_type != "application/octet-stream":
        return part_type
    return (content_type_for_path(filename) if filename else None) or part_type or ""


def to_json(message: Message) -> dict[str, Any]:
    """A response message as proto3 JSON, default values included (`"hits": []`)."""
    out: dict[str, Any] = json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True
    )
    return out


# The job in a WatchJob update, for an SSE event's data.
def job_json(job: job_pb2.Job) -> dict[str, Any]:
    return to_json(job)
