"""Starting and stopping a service's gRPC server, with health checking, reflection (so grpcurl
and other generic tools discover the API) and a graceful drain; once
started, the process's start-up objects leave the garbage collector's reach (see
freeze_startup_objects)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from ragline.errors import ConfigurationError
from ragline.grpc_status import ErrorInterceptor
from ragline.tls import PLAINTEXT, ServerSecurity

log = logging.getLogger(__name__)

# Room for a 64 MiB document plus its envelope.
MAX_MESSAGE_BYTES = 80 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
CHANNEL_OPTIONS = SERVER_OPTIONS


class GrpcServer:
    """An aio server with the error interceptor, the standard health service, and reflection
    listing `services` (the full names of what `register` adds), health and reflection itself;
    on a plaintext port unless `security` (ragline.tls.server_security) says otherwise.
    `interceptors` run inside the error interceptor, in order (the gateway's access check)."""

    def __init__(
        self,
        address: str,
        register: Sequence[Callable[[aio.Server], None]],
        service_name: str,
        security: ServerSecurity | None = None,
        *,
        interceptors: Sequence[aio.ServerInterceptor] = (),  # type: ignore[type-arg]
        outer_interceptors: Sequence[aio.ServerInterceptor] = (),  # type: ignore[type-arg]
        services: Sequence[str] = (),
    ) -> None:
        self.address = address
        self.service_name = service_name
        self.security = security or ServerSecurity(None, PLAINTEXT)
        # `outer_interceptors` (e.g. RPC metrics) see each call's final status; `interceptors`
        # run inside the error interceptor (e.g. the access check), whose errors it maps.
        self.server = aio.server(
            interceptors=[*outer_interceptors, ErrorInterceptor(), *interceptors],
            options=SERVER_OPTIONS,
        )
        self.health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        for add in register:
            add(self.server)
        reflection.enable_server_reflection(
            [
                *services,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self.server,
        )
        try:
            if self.security.credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, self.security.credentials)
        except RuntimeError as exc:
            raise ConfigurationError(
                f"cannot listen on {address}: {exc}. Is another ragline {service_name} running? "
                "Stop it or choose another address."
            ) from exc

    async def start(self) -> None:
        await self.server.start()

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", self.service_name):
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        await self.set_serving(False)
        await self.server.stop(grace_s)


class Companion(Protocol):
    """Another server in the same process, started and drained with the gRPC one (the gateway's
    HTTP server)."""

    async def start(self) -> None: ...

    async def set_serving(self, serving: bool) -> None: ...

    async def stop(self, grace_s: float) -> None: ...


async def run_until_signalled(
    server: GrpcServer,
    *,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    on_stop: Callable[[], None] | None = None,
    grace_s: float = 30.0,
    companions: Sequence[Companion] = (),
) -> None:
    """Serves, and runs `background` loops, until SIGTERM or SIGINT; then drains and returns.
    `companions` start after the gRPC server and drain beside it.

    On a signal: health flips to NOT_SERVING (so load balancers stop sending), `on_stop` asks the
    loops to finish the batch in hand, and the loops and in-flight RPCs drain side by side within
    one `grace_s`: whatever still runs then is cancelled (its messages are redelivered), so the
    process exits within the grace, as an orchestrator's termination period expects.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        for companion in companions:
            await companion.start()
    except BaseException:
        await server.stop(0)
        raise
    tasks = [asyncio.create_task(fn()) for fn in background]
    freeze_startup_objects()
    await server.set_serving(True)
    for companion in companions:
        await companion.set_serving(True)
    log.info("%s serving on %s (%s)", server.service_name, server.address, server.security.mode)
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in tasks if t in done and t.exception() is not None]
    log.info("%s stopping: draining in-flight work (up to %.0fs)", server.service_name, grace_s)
    await server.set_serving(False)
    for companion in companions:
        await companion.set_serving(False)
    if on_stop is not None:
        on_stop()
    # New RPCs are refused from here; those in flight get the same grace as the loops.
    rpcs = asyncio.gather(server.stop(grace_s), *(c.stop(grace_s) for c in companions))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), grace_s)
    except TimeoutError:
        log.warning(
            "%s: work still running after %.0fs; leaving it for redelivery",
            server.service_name,
            grace_s,
        )
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await rpcs
    waiter.cancel()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    if failed:
        raise failed[0].exception()  # type: ignore[misc]
    log.info("%s stopped", server.service_name)


def channel(address: str, credentials: grpc.ChannelCredentials | None = None) -> aio.Channel:
    """A client channel to another ragline service: TLS with `credentials`
    (ragline.tls.channel_credentials), plaintext without."""
    if credentials is None:
        return aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    return aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS)


def freeze_startup_objects() -> int:
    """Frees start-up's garbage, then moves every object left (modules, clients, the model's
    Python objects: they live as long as the process) out of the garbage collector's reach.
    Returns how many objects were frozen.

    Otherwise every full collection walks them all again while holding the GIL: measured, ~190 ms
    in the embedder (~400,000 objects once torch and transformers are loaded; the model thread
    waits for it) and 10-50 ms in the other services. Frozen, the full collections in the
    bench's end-to-end run took 0.2-5 ms. The one collection here costs as much, once.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
