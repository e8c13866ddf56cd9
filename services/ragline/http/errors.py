"""ragline's errors as HTTP answers: the gRPC status code that ragline.grpc_status gives the
error (its one table), the HTTP status Google's API guidelines give that code, and an AIP-193
JSON body carrying the same message and the same google.rpc details (BadRequest naming the
field, RetryInfo with the delay), so both transports answer a call alike.

    {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "...",
               "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest", ...}]}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format

from ragline.errors import ResourceExhausted
from ragline.grpc_status import details_for, status_for

# The HTTP status for each gRPC code (google/rpc/code.proto's mapping).
HTTP_STATUS: Mapping[grpc.StatusCode, int] = MappingProxyType(
    {
        grpc.StatusCode.OK: 200,
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.FAILED_PRECONDITION: 400,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.CANCELLED: 499,
        grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        grpc.StatusCode.INTERNAL: 500,
        grpc.StatusCode.UNKNOWN: 500,
        grpc.StatusCode.DATA_LOSS: 500,
    }
)


@dataclass(frozen=True)
class HttpError:
    """An error answer: its HTTP status, its JSON body and any headers (Retry-After)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def http_error(exc: BaseException) -> HttpError:
    """The answer for `exc`, as gRPC would give it (an unexpected error is logged with a
    reference and answered 500 naming it, by grpc_status.status_for)."""
    code, message = status_for(exc)
    details = []
    for detail in details_for(exc):
        holder = any_pb2.Any()
        holder.Pack(detail)
        details.append(json_format.MessageToDict(holder))
    headers = {}
    if isinstance(exc, ResourceExhausted) and exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return HttpError(HTTP_STATUS[code], error_body(code, message, details), headers)


def error_body(
    code: grpc.StatusCode,
    message: str,
    details: list[dict[str, Any]] | None = None,
    *,
    http_status: int | None = None,
) -> dict[str, Any]:
    """An AIP-193 error body for `code`; `http_status` for the HTTP-only answers that no gRPC
    code maps to (405 for a method a path does not take, 413 for a body too large)."""
    return {
        "error": {
            "code": http_status or HTTP_STATUS[code],
            "status": code.name,
            "message": message,
            "details": details or [],
        }
    }
