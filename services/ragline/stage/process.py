"""Wiring one stage process: broker, job store, consumer loop and gRPC server, until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from grpc import aio
from prometheus_client.registry import Collector

from ragline import metrics
from ragline.broker.base import Broker
from ragline.broker.factory import make_broker
from ragline.config import Settings
from ragline.faults import Faults
from ragline.grpc_server import GrpcServer, run_until_signalled
from ragline.jobs.store import JobStore
from ragline.redis_checks import check_redis_durability
from ragline.stage.faulty import FaultyHandler
from ragline.stage.runner import StageHandler, StageRunner
from ragline.stage.solo_runs import SoloRuns
from ragline.tls import ServerSecurity

log = logging.getLogger(__name__)


async def serve_stage(
    settings: Settings,
    *,
    name: str,
    address: str,
    security: ServerSecurity,
    make_handler: Callable[[Broker, JobStore], StageHandler],
    register: Sequence[Callable[[aio.Server], None]] = (),
    services: Sequence[str] = (),
    batch_size: int | None = None,
    consumers: int = 1,
    gather_s: float = 0.0,
    own_metrics: Sequence[Collector] = (),
) -> None:
    """Runs a stage's consumer loop beside its gRPC server until SIGTERM/SIGINT, then drains.
    `security` (ragline.tls.server_security) is read first thing in the stage's run(), so a bad
    TLS file stops it before it loads a model or connects anywhere. `services` names what
    `register` adds, for reflection. With RAGLINE_METRICS_ADDRESS set, serves the stage's
    metrics, `own_metrics` and its queue's backlog there."""
    broker = make_broker(settings)
    jobs = JobStore.from_settings(settings)
    await broker.connect()
    exporter = None
    try:
        await check_redis_durability(jobs.redis)
        handler = make_handler(broker, jobs)
        if settings.faults:
            handler = FaultyHandler(handler, Faults(settings.faults, handler.stage.value), jobs)
        runner = StageRunner(
            handler,
            broker,
            jobs,
            solo_runs=SoloRuns(jobs.redis, namespace=jobs.namespace),
            policy=settings.retry_policy(),
            batch_size=batch_size or settings.read_batch_size,
            extend_every_s=max(0.5, settings.visibility_timeout_s / 3),
            stuck_after_s=settings.stuck_after_s,
            consumers=consumers,
            gather_s=gather_s,
        )
        server = GrpcServer(
            settings.listen_address or address, register, name, security, services=services
        )
        backlog = metrics.BacklogCollector(
            asyncio.get_running_loop(), handler.stage.value, lambda: broker.backlog(runner.queue)
        )
        exporter = metrics.start_metrics_server(
            settings.metrics_address, name, [*metrics.STAGE, *own_metrics, backlog]
        )
        await run_until_signalled(
            server, background=[runner.run], on_stop=runner.stop, grace_s=settings.shutdown_grace_s
        )
    finally:
        if exporter is not None:
            await asyncio.to_thread(exporter.close)
        await broker.close()
        await jobs.close()
