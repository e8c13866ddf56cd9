"""The OpenAPI 3.0.3 document of the HTTP/JSON API, built from ragline.http.routes' table and
the ragline.v1 protobuf descriptors (each message's schema is its proto3 JSON mapping), so it
cannot drift from what the gateway serves. The gateway serves it at /openapi.json; a copy is
checked in at docs/openapi.json, which tests/unit/test_http_openapi.py keeps current:

    python -m ragline.http.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from ragline.http.routes import HEALTH_PATH, OPENAPI_PATH, ROUTES, Body, Route
from ragline.http.sse import KEEPALIVE_S

REGENERATE = "python -m ragline.http.openapi > docs/openapi.json"
_PACKAGE = "ragline.v1."
_ERROR = {"$ref": "#/components/schemas/Error"}
# The error answers every operation may give, and those of operations with a body.
_ERRORS = {
    "400": "The request is invalid: `details` holds a google.rpc.BadRequest naming the field",
    "401": "No API key, or one the gateway does not know",
    "403": "The API key lacks the scope this operation needs",
    "404": "No such job or document (or it is another tenant's)",
    "429": "A queue is full (`Retry-After` says when to try again) or a limit is exceeded",
    "500": "An internal error; the message names a reference in the gateway's log",
    "503": "A service behind the gateway did not answer; retry later",
}
_BODY_ERRORS = {"413": "The request body is larger than the gateway reads"}

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
}
# 64-bit integers are JSON strings in proto3 JSON (a double cannot hold them all).
_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
for _kind in (
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SFIXED64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED64,
):
    _SCALARS[_kind] = _INT64
# Well-known types with a JSON form of their own.
_WELL_KNOWN = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"},
}


def _name(descriptor: Descriptor | EnumDescriptor) -> str:
    return descriptor.full_name.removeprefix(_PACKAGE)


class _Schemas:
    """The component schemas of the messages and enums reachable from the routes."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        name = _name(descriptor)
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive messages end here
            self.components[name] = self._message(descriptor)
        return {"$ref": f"#/components/schemas/{name}"}

    def enum_ref(self, descriptor: EnumDescriptor) -> dict[str, Any]:
        name = _name(descriptor)
        self.components[name] = {"type": "string", "enum": [v.name for v in descriptor.values]}
        return {"$ref": f"#/components/schemas/{name}"}

    def _message(self, descriptor: Descriptor) -> dict[str, Any]:
        properties = {f.json_name: self.field(f) for f in descriptor.fields}
        return {
            "type": "object",
            "description": f"{descriptor.full_name} in the proto3 JSON mapping",
            "properties": properties,
            "additionalProperties": False,
        }

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.single(value)}
        single = self.single(field)
        if field.is_repeated:
            return {"type": "array", "items": single}
        return single

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            return self.ref(field.message_type)
        if field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        return dict(_SCALARS[field.type])


def _error_responses(route: Route | None) -> dict[str, Any]:
    errors = {**_ERRORS, **(_BODY_ERRORS if route and route.body is not Body.NONE else {})}
    return {
        code: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
        for code, text in sorted(errors.items())
    }


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    fields = {f.json_name: f for f in route.request.fields}
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        }
        for name in route.path_fields
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": schemas.field(fields[name])}
        for name in route.query_fields
    ]
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": f"The IngestService {route.rpc} RPC (ragline.v1).",
        "parameters": parameters,
    }
    if route.body is not Body.NONE:
        content: dict[str, Any] = {"application/json": {"schema": schemas.ref(route.request)}}
        if route.body is Body.JSON_OR_UPLOAD:
            content["multipart/form-data"] = {"schema": _upload_schema()}
        operation["requestBody"] = {"required": True, "content": content}
    if route.streaming:
        job = route.response.fields_by_name["job"].message_type
        assert job is not None
        ok = {
            "description": (
                "Server-sent events: each update is `event: job` with a "
                f"{_name(job)} as JSON on its "
                "`data:` line; the stream ends after the job reaches a terminal state. A "
                f"`: keepalive` comment comes after {KEEPALIVE_S:g} s of silence; an error "
                "after the stream began is `event: error` with an Error as its data."
            ),
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
        schemas.ref(route.response)
    else:
        ok = {
            "description": f"The {_name(route.response)}",
            "content": {"application/json": {"schema": schemas.ref(route.response)}},
        }
    operation["responses"] = {"200": ok, **_error_responses(route)}
    return operation


def _upload_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["file", "documentId"],
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "The document's bytes; its file name becomes "
                "metadata.originalFilename and its Content-Type contentType unless given",
            },
            "documentId": {"type": "string"},
            "contentType": {"type": "string"},
            "requestId": {"type": "string"},
            "metadata": {"type": "string", "description": "A DocumentMetadata as JSON"},
            "config": {"type": "string", "description": "A ChunkingConfig as JSON"},
        },
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A google.rpc.Status in the AIP-193 JSON shape",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "status", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "integer", "description": "The HTTP status"},
                    "status": {"type": "string", "enum": [c.name for c in grpc.StatusCode]},
                    "message": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["@type"],
                            "properties": {"@type": {"type": "string"}},
                            "additionalProperties": True,
                        },
                    },
                },
            }
        },
    }


def build_document() -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    paths[HEALTH_PATH] = {
        "get": {
            "operationId": "health",
            "summary": "Whether the gateway serves (no API key needed)",
            "security": [],
            "responses": {
                code: {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}
                    },
                }
                for code, text in (("200", "Serving"), ("503", "Stopping: send calls elsewhere"))
            },
        }
    }
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document (no API key needed)",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    components = dict(sorted(schemas.components.items()))
    components["Error"] = _error_schema()
    components["Health"] = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["SERVING", "NOT_SERVING"]}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ragline HTTP/JSON API",
            "version": "v1",
            "description": (
                "The IngestService of ragline.v1 over HTTP/JSON (proto3 JSON mapping). "
                "docs/http.md describes the mapping, errors and server-sent events. "
                f"Generated: {REGENERATE}"
            ),
        },
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A ragline API key (rl_<id>_<secret>), when the gateway "
                    "has RAGLINE_KEYS_FILE set",
                }
            },
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
