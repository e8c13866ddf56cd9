"""One server interceptor that maps ragline's errors to gRPC status codes.

No exception reaches a client as UNKNOWN: our own errors get their matching code and message;
anything else is logged with a reference and answered INTERNAL, naming that reference.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
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
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                try:
                    return await inner_uu(request, context)
                except aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc)

            return handler._replace(unary_unary=unary_unary)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                try:
                    async for item in inner_us(request, context):
                        yield item
                except aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc)

            return handler._replace(unary_stream=unary_stream)
        return handler
