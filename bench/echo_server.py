"""A bare grpc.aio server whose one unary method echoes the request bytes: the floor for any
Python gRPC service. Run as `python -m bench.echo_server PORT`."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
from grpc import aio

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def serve(port: int) -> None:
    """Serves the echo method on 127.0.0.1:`port` until killed."""
    server = aio.server()
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
