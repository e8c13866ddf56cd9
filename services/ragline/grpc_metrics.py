"""RPC metrics for a gRPC server: each answered call counted by method and the status code the
client saw, and timed. Installed outermost (before ErrorInterceptor and any other), so the code
is the final one, whatever an inner interceptor turned an error into."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from ragline import metrics
from ragline.grpc_status import HandlerCache


class RpcMetricsInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts and times every unary and server-streaming RPC (ragline.metrics.RPCS)."""

    def __init__(self) -> None:
        # Each method's handler wrapped once, with its label children looked up once.
        self._wrapped = HandlerCache(_measured)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler  # an unknown method: grpcio answers UNIMPLEMENTED
        return self._wrapped.get(handler_call_details.method, handler)


def _measured(full_method: str, handler: Any) -> Any:
    """`handler` counting and timing each of its calls."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    seconds = metrics.RPC_SECONDS.labels(service, method)
    codes: dict[grpc.StatusCode, Any] = {}

    def record(context: Any, start: float, failure: BaseException | None) -> None:
        seconds.observe(time.perf_counter() - start)
        code = _final_code(context, failure)
        counter = codes.get(code)
        if counter is None:
            counter = codes[code] = metrics.RPCS.labels(service, method, code.name)
        counter.inc()

    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            try:
                reply = await inner_uu(request, context)
            except BaseException as exc:
                record(context, start, exc)
                raise
            record(context, start, None)
            return reply

        return handler._replace(unary_unary=unary_unary)
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            start = time.perf_counter()
            try:
                async for item in inner_us(request, context):
                    yield item
            except BaseException as exc:
                record(context, start, exc)
                raise
            record(context, start, None)

        return handler._replace(unary_stream=unary_stream)
    return handler


def _final_code(context: Any, failure: BaseException | None) -> grpc.StatusCode:
    """The status the client sees: the one the call set (or aborted with), OK when it returned
    without one, CANCELLED when the client went away, UNKNOWN for an escaped error."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        # grpcio keeps an aborted call's code as the raw number in some paths.
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    if failure is None:
        return grpc.StatusCode.OK
    if isinstance(failure, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN
