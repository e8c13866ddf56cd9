"""The gateway process."""

from __future__ import annotations

import asyncio

from ragline import metrics
from ragline.broker.factory import make_broker
from ragline.config import Settings
from ragline.faults import Faults
from ragline.gateway.dead_letters import DeadLetterOps
from ragline.gateway.intake import CHUNK_QUEUE, Intake
from ragline.gateway.outbox import FaultyOutbox, make_outbox
from ragline.gateway.service import IngestServicer
from ragline.grpc_metrics import RpcMetricsInterceptor
from ragline.grpc_server import GrpcServer, channel, run_until_signalled
from ragline.jobs.store import JobStore
from ragline.jobs.versions import VersionStore
from ragline.model_info import resolve_model
from ragline.redis_checks import check_redis_durability
from ragline.v1 import ingest_service_pb2_grpc


async def run(settings: Settings) -> None:
    # The gateway validates against the model's configuration files; it never loads its weights.
    model = resolve_model(settings.model)
    broker = make_broker(settings)
    await broker.connect()
    jobs = JobStore.from_settings(settings)
    await check_redis_durability(jobs.redis)
    embedder = channel(settings.embedder_address)
    indexer = channel(settings.indexer_address)
    outbox = make_outbox(
        broker,
        jobs,
        namespace=settings.namespace,
        queue=CHUNK_QUEUE,
        lease_s=settings.outbox_lease_s,
    )
    if settings.faults:
        outbox = FaultyOutbox(outbox, Faults(settings.faults, "gateway"))
    servicer = IngestServicer(
        settings,
        model,
        Intake(
            broker,
            jobs,
            settings.max_queue_depth,
            outbox=outbox,
            commit_interval_s=settings.commit_interval_ms / 1000,
        ),
        jobs,
        VersionStore.beside(jobs),
        DeadLetterOps(broker, jobs),
        embedder,
        indexer,
    )
    server = GrpcServer(
        settings.listen_address or settings.gateway_address,
        [lambda s: ingest_service_pb2_grpc.add_IngestServiceServicer_to_server(servicer, s)],
        "gateway",
        outer_interceptors=[RpcMetricsInterceptor()],
    )
    stuck = metrics.StuckJobsCollector(
        asyncio.get_running_loop(), lambda: jobs.count_stuck(settings.stuck_after_s)
    )
    exporter = metrics.start_metrics_server(
        settings.metrics_address, "gateway", [*metrics.GATEWAY, stuck]
    )
    try:
        # The outbox relay (RabbitMQ) runs for as long as the gateway serves.
        await run_until_signalled(
            server,
            background=outbox.background(),
            on_stop=outbox.stop,
            grace_s=settings.shutdown_grace_s,
        )
    finally:
        if exporter is not None:
            await asyncio.to_thread(exporter.close)
        await embedder.close(None)
        await indexer.close(None)
        await broker.close()
        await jobs.close()
