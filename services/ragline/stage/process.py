"""Wiring one stage process: broker, job store, consumer loop and gRPC server, until SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from grpc import aio

from ragline.broker.base import Broker
from ragline.broker.factory import make_broker
from ragline.config import Settings
from ragline.grpc_server import GrpcServer, run_until_signalled
from ragline.jobs.store import JobStore
from ragline.retry import RetryPolicy
from ragline.stage.runner import StageHandler, StageRunner

log = logging.getLogger(__name__)


async def serve_stage(
    settings: Settings,
    *,
    name: str,
    address: str,
    make_handler: Callable[[Broker, JobStore], StageHandler],
    register: Sequence[Callable[[aio.Server], None]] = (),
    batch_size: int | None = None,
) -> None:
    """Runs a stage's consumer loop beside its gRPC server until SIGTERM/SIGINT, then drains."""
    broker = make_broker(settings)
    jobs = JobStore.from_url(settings.redis_url, namespace=settings.namespace)
    await broker.connect()
    try:
        handler = make_handler(broker, jobs)
        runner = StageRunner(
            handler,
            broker,
            jobs,
            policy=RetryPolicy(),
            batch_size=batch_size or settings.read_batch_size,
        )
        server = GrpcServer(settings.listen_address or address, register, name)
        await run_until_signalled(server, background=[runner.run], on_stop=runner.stop)
    finally:
        await broker.close()
        await jobs.close()
