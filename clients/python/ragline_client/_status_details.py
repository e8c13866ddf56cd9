"""The structured details of a failed call's status (google/rpc/error_details.proto), which the
gateway sends in the trailing metadata: BadRequest names the bad field, RetryInfo the delay.

The only module that reads google.rpc's Status: the messages come from googleapis-common-protos
(pure protobuf code, needing protobuf only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

# Where gRPC carries the google.rpc.Status.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The kinds of detail the client acts on; others are left out.
_KINDS: tuple[type[Message], ...] = (error_details_pb2.BadRequest, error_details_pb2.RetryInfo)


def bad_field(exc: grpc.RpcError) -> str:
    """The field the call's BadRequest names first; "" without one."""
    for detail in status_details(exc):
        if isinstance(detail, error_details_pb2.BadRequest) and detail.field_violations:
            return str(detail.field_violations[0].field)
    return ""


def retry_delay(exc: grpc.RpcError) -> float | None:
    """The seconds the call's RetryInfo asks the client to wait; None without one."""
    for detail in status_details(exc):
        if isinstance(detail, error_details_pb2.RetryInfo) and detail.HasField("retry_delay"):
            return max(0.0, float(detail.retry_delay.ToNanoseconds()) / 1e9)
    return None


def status_details(exc: grpc.RpcError) -> list[Any]:
    """The BadRequest and RetryInfo details the failed call's status carried, in order."""
    trailing_fn = getattr(exc, "trailing_metadata", None)
    trailing: Iterable[tuple[str, str | bytes]] | None = (
        trailing_fn() if callable(trailing_fn) else None
    )
    for key, value in trailing or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return []  # garbled details: the code and the words still say what happened
        found: list[Any] = []
        for packed in status.details:
            for kind in _KINDS:
                if packed.Is(kind.DESCRIPTOR):
                    detail = kind()
                    packed.Unpack(detail)
                    found.append(detail)
        return found
    return []
