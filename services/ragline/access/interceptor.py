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

from ragline.access.policy import REFUSALS, Authenticate, admit, bind_caller
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
        # grpc.aio runs the interceptors in the call's own task, before its handler: the caller
        # bound here is the one the servicer sees, and no other call's (each RPC's task has its
        # own copy of the context; tests/unit/test_access_interceptor.py checks both). So the
        # handler goes on unchanged, and the interceptors outside can keep their wrapping of it.
        bind_caller(caller)
        return handler


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
