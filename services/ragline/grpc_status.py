"""One server interceptor that maps ragline's errors to gRPC status codes.

No exception reaches a client as UNKNOWN: our own errors get their matching code and message;
anything else is logged with a reference and answered INTERNAL, naming that reference. Request
bytes that do not decode as the method's request message are answered INVALID_ARGUMENT.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from ragline import errors

log = logging.getLogger(__name__)

_CODES: list[tuple[type[errors.RaglineError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.PermanentTaskError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.TransientError, grpc.StatusCode.UNAVAILABLE),
    (errors.ConfigurationError, grpc.StatusCode.FAILED_PRECONDITION),
]


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for `exc`."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, str(exc)
    ref = uuid.uuid4().hex[:12]
    log.error("unexpected error (ref %s)", ref, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (ref {ref}); the service log has the details"


async def _abort(context: aio.ServicerContext[Any, Any], exc: BaseException) -> None:
    code, message = status_for(exc)
    await context.abort(code, message)


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

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
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
