"""ragline's errors and gRPC statuses, both ways, in one place.

Out (a server's answer): one interceptor gives each ragline error its status code and message,
and the structured details of google/rpc/error_details.proto through grpcio-status: BadRequest
naming the field for INVALID_ARGUMENT, RetryInfo with the delay for a full queue. No exception
reaches a client as UNKNOWN; anything unexpected is logged with a reference and answered
INTERNAL, naming that reference. Request bytes that do not decode as the method's request
message are answered INVALID_ARGUMENT.

In (a ragline service's answer to another): `error_from_rpc` turns the status back into the
error it came from, reading the same details, so an indexer's FAILED_PRECONDITION stays one
and only a service that did not answer becomes DependencyUnavailable.

    error                  code                  details        back from the code
    InvalidArgument        INVALID_ARGUMENT      BadRequest     InvalidArgument (the field)
    PermanentTaskError     INVALID_ARGUMENT      BadRequest     InvalidArgument
    NotFound               NOT_FOUND                            NotFound
    Unauthenticated        UNAUTHENTICATED                      Unauthenticated
    PermissionDenied       PERMISSION_DENIED                    PermissionDenied
    FailedPrecondition     FAILED_PRECONDITION                  FailedPrecondition
    ConfigurationError     FAILED_PRECONDITION                  FailedPrecondition
    ResourceExhausted      RESOURCE_EXHAUSTED    RetryInfo      ResourceExhausted (the delay)
    TransientError         UNAVAILABLE                          DependencyUnavailable
    DependencyFailed       INTERNAL                             (DEADLINE_EXCEEDED, CANCELLED:
    anything else          INTERNAL (a ref)                      DependencyUnavailable; any
                                                                 other: DependencyFailed)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from ragline import errors

log = logging.getLogger(__name__)

# Where grpcio-status carries a google.rpc.Status in the trailing metadata.
_DETAILS_KEY = "grpc-status-details-bin"

_CODES: list[tuple[type[errors.RaglineError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.PermanentTaskError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.TransientError, grpc.StatusCode.UNAVAILABLE),
    (errors.ConfigurationError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.DependencyFailed, grpc.StatusCode.INTERNAL),
]
# The codes that mean the other service did not (or could not) answer: worth retrying.
_UNANSWERED = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for `exc`."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, str(exc)
    ref = uuid.uuid4().hex[:12]
    log.error("unexpected error (ref %s)", ref, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (ref {ref}); the service log has the details"


def details_for(exc: BaseException) -> list[Message]:
    """The structured details that go with `exc`'s status."""
    if isinstance(exc, errors.InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=exc.problem
        )
        return [error_details_pb2.BadRequest(field_violations=[violation])]
    if isinstance(exc, errors.ResourceExhausted) and exc.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after_s * 1e9))
        return [error_details_pb2.RetryInfo(retry_delay=delay)]
    return []


async def _abort(context: aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    code, message = status_for(exc)
    details = details_for(exc)
    if not details:
        await context.abort(code, message)
        return
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    status = rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=packed)
    )
    await context.abort(status.code, status.details, status.trailing_metadata)


def error_from_rpc(exc: grpc.RpcError, service: str, address: str) -> errors.RaglineError:
    """The ragline error behind another ragline service's failed answer; `service` and `address`
    name it in the message."""
    code: grpc.StatusCode = exc.code()
    text: str = exc.details() or ""
    details = _received_details(exc)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        for detail in details:
            if isinstance(detail, error_details_pb2.BadRequest) and detail.field_violations:
                violation = detail.field_violations[0]
                return errors.InvalidArgument(violation.field, violation.description)
        field, _, problem = text.partition(": ")
        return errors.InvalidArgument(field or "request", problem or text)
    if code == grpc.StatusCode.NOT_FOUND:
        return errors.NotFound(text or "not found")
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return errors.FailedPrecondition(text)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return errors.Unauthenticated(text or f"the {service} at {address} wants an API key")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return errors.PermissionDenied(text or f"the {service} at {address} refused the call")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        delays = [d for d in details if isinstance(d, error_details_pb2.RetryInfo)]
        after = delays[0].retry_delay.ToNanoseconds() / 1e9 if delays else None
        return errors.ResourceExhausted(text, retry_after_s=after)
    if code in _UNANSWERED:
        return errors.DependencyUnavailable(
            f"the {service} at {address} did not answer ({code.name}: {text}); "
            + _what_to_check(text, service)
        )
    return errors.DependencyFailed(
        f"the {service} at {address} failed ({code.name}: {text}); its log has the details"
    )


def _what_to_check(text: str, service: str) -> str:
    """What to check when another service did not answer: it runs, or (the TLS handshake failed)
    the TLS settings between the two."""
    words = text.lower()
    if "handshake" in words or "certificate" in words or "hostname verification" in words:
        return (
            f"check RAGLINE_TLS_CA_FILE here: it must name the CA that signed the {service}'s "
            "certificate, and that certificate must name the host dialled"
        )
    if "socket closed" in words:
        return (
            f"check that `ragline serve {service}` is running; if it requires mutual TLS, set "
            "RAGLINE_TLS_CLIENT_CERT_FILE and _KEY_FILE here to a certificate its "
            "RAGLINE_TLS_CLIENT_CA_FILE signed"
        )
    return f"check that `ragline serve {service}` is running"


def _received_details(exc: grpc.RpcError) -> list[Message]:
    """The error_details_pb2 messages in a failed call's google.rpc.Status, if it sent one."""
    # (key, value) pairs: grpc.aio's Metadata, or the sync API's tuple of _Metadatum.
    trailing: Any = exc.trailing_metadata() or ()
    raw = next((value for key, value in trailing if key == _DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return []
    status = status_pb2.Status.FromString(raw)
    out: list[Message] = []
    for holder in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if holder.Is(kind.DESCRIPTOR):
                message = kind()
                holder.Unpack(message)
                out.append(message)
    return out


class _Undecodable:
    """Stands in for a request whose bytes did not decode, so the handler can answer for it.

    grpcio deserializes before any handler or interceptor code runs, and answers UNKNOWN when
    the deserializer raises; a deserializer cannot abort, but it can return this instead.
    """

    def __init__(self, problem: errors.InvalidArgument) -> None:
        self.problem = problem


def _tolerant(deserializer: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any]:
    """`deserializer`, returning an _Undecodable for bytes it cannot decode."""
    owner = getattr(deserializer, "__self__", None)  # a generated message class's FromString
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None) or "its request message"

    def deserialize(raw: bytes) -> Any:
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except DecodeError:
            return _Undecodable(
                errors.InvalidArgument(
                    "request",
                    f"could not be decoded as a {name} message, which {method} takes; send that "
                    "message, serialized with the ragline.v1 protos",
                )
            )

    return deserialize


class ErrorInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps every handler so that raised errors become proper statuses."""

    def __init__(self) -> None:
        # Each method's handler, wrapped once: a method's handler is the same object call after
        # call, and wrapping it anew for each call cost a share of every call's CPU.
        self._wrapped = HandlerCache(_with_statuses)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self._wrapped.get(handler_call_details.method, handler)


class HandlerCache:
    """`wrap(method, handler)` for each method, made once and reused for as long as the method's
    handler is the same object (a new one, e.g. an access refusal's, is wrapped anew)."""

    def __init__(self, wrap: Callable[[str, Any], Any]) -> None:
        self._wrap = wrap
        self._cache: dict[str, tuple[Any, Any]] = {}

    def get(self, method: str, handler: Any) -> Any:
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._cache[method] = (handler, wrapped)
        return wrapped


def _with_statuses(method: str, handler: Any) -> Any:
    """`handler` answering every error it raises with its status (see _abort)."""
    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            try:
                if isinstance(request, _Undecodable):
                    raise request.problem
                return await inner_uu(request, context)
            except aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc)

        return handler._replace(
            unary_unary=unary_unary,
            request_deserializer=_tolerant(handler.request_deserializer, method),
        )
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                if isinstance(request, _Undecodable):
                    raise request.problem
                async for item in inner_us(request, context):
                    yield item
            except aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc)

        return handler._replace(
            unary_stream=unary_stream,
            request_deserializer=_tolerant(handler.request_deserializer, method),
        )
    return handler
