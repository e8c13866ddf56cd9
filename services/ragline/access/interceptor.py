"""The gRPC side of access control: one server interceptor that authenticates every call's API
key, checks its scope against access.policy's table, and makes the caller current for the
servicer (access.policy.current_caller). The health and reflection services stay open.

A refused call is answered at once, before its request is even decoded, with the status from
ragline.grpc_status's one table (UNAUTHENTICATED or PERMISSION_DENIED), and logged with the
peer and the key's public id at most: never the key.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from ragline.access.policy import REFUSALS, Authenticate, Caller, admit, bind_caller
from ragline.grpc_status import status_for

log = logging.getLogger(__name__)

INGEST_SERVICE = "ragline.v1.IngestService"
# Services any caller may use without a key: health checks come from probes and load balancers,
# and reflection describes the API, which the published .proto files describe anyway (grpcurl
# needs it before it can send a key with a call).
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


class AccessInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Lets a call through only when `authenticate` accepts its `authorization` metadata and
    the caller holds the scope the method needs. Methods outside access.policy.METHOD_SCOPES are
    refused (fail closed), except those of OPEN_SERVICES."""

    def __init__(self, authenticate: Authenticate) -> None:
        self._authenticate = authenticate

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler: Any = await continuation(handler_call_details)
        method: str = handler_call_details.method
        service, _, rpc = method.lstrip("/").partition("/")
        if handler is None or service in OPEN_SERVICES:
            return handler
        metadata = handler_call_details.invocation_metadata or ()
        try:
            caller = admit(
                self._authenticate,
                [v for k, v in metadata if k == "authorization"],
                rpc if service == INGEST_SERVICE else method,
            )
        except REFUSALS as exc:
            return _refusing(handler, method, exc)
        return _binding(handler, caller)


def _refusing(handler: Any, method: str, exc: Exception) -> Any:
    """`handler` answering every call with `exc`'s status, without decoding the request."""
    code, message = status_for(exc)

    async def refuse(context: Any) -> None:
        log.warning("refused %s from %s: %s: %s", method, context.peer(), code.name, message)
        await context.abort(code, message)

    async def unary(request: Any, context: Any) -> Any:
        await refuse(context)

    async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
        await refuse(context)
        yield  # never reached: makes this an async generator, as a streaming handler is

    return handler._replace(
        request_deserializer=None,
        **{
            kind: (streaming if kind.endswith("_stream") else unary)
            for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
            if getattr(handler, kind) is not None
        },
    )


def _binding(handler: Any, caller: Caller) -> Any:
    """`handler` with `caller` made current before the servicer runs."""
    if handler.unary_unary is not None or handler.stream_unary is not None:
        kind = "unary_unary" if handler.unary_unary is not None else "stream_unary"
        inner_unary = getattr(handler, kind)

        async def unary(request: Any, context: Any) -> Any:
            bind_caller(caller)
            return await inner_unary(request, context)

        return handler._replace(**{kind: unary})
    kind = "unary_stream" if handler.unary_stream is not None else "stream_stream"
    inner_stream = getattr(handler, kind)

    async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
        bind_caller(caller)
        async for item in inner_stream(request, context):
            yield item

    return handler._replace(**{kind: streaming})
