"""The gateway process."""

from __future__ import annotations

import asyncio
import logging

from ragline import metrics
from ragline.access.interceptor import AccessInterceptor
from ragline.access.keys_file import KeysFile
from ragline.access.policy import AUTH_OFF_CALLER, Authenticate
from ragline.broker.factory import make_broker
from ragline.config import Settings
from ragline.faults import Faults
from ragline.gateway.dead_letters import DeadLetterOps
from ragline.gateway.intake import Intake
from ragline.gateway.outbox import FaultyOutbox, chunk_outbox
from ragline.gateway.service import IngestServicer
from ragline.grpc_metrics import RpcMetricsInterceptor
from ragline.grpc_server import GrpcServer, channel, run_until_signalled
from ragline.http.app import HttpGateway
from ragline.jobs.repair import Repairer
from ragline.jobs.store import JobStore
from ragline.jobs.versions import VersionStore
from ragline.model_info import resolve_model
from ragline.redis_checks import check_redis_durability
from ragline.tls import channel_credentials, http_ssl_context, server_security
from ragline.v1 import ingest_service_pb2, ingest_service_pb2_grpc

log = logging.getLogger(__name__)


def _access(settings: Settings, address: str) -> tuple[Authenticate, KeysFile | None]:
    """How calls are authenticated, and the keys file to keep reloading (None with auth off).
    A keys file that is set but missing or invalid raises ConfigurationError: fail closed."""
    if not settings.keys_file:
        log.warning(
            "API keys are OFF: anyone who can reach the gateway at %s can call every RPC, as "
            "tenant 'default'. To require keys, create a keys file with `ragline keys create "
            "--file PATH --tenant TENANT --scopes ingest,read` and set RAGLINE_KEYS_FILE=PATH",
            address,
        )
        return (lambda _authorization: AUTH_OFF_CALLER), None
    keys = KeysFile(settings.keys_file, settings.keys_reload_s)
    log.info(
        "API keys are on: %d keys from %s (checked for changes every %gs)",
        len(keys.ring.entries),
        settings.keys_file,
        settings.keys_reload_s,
    )
    if not keys.ring.entries:
        log.warning("the keys file %s holds no keys: every call will be refused", keys.path)
    return keys.authenticate, keys


async def run(settings: Settings) -> None:
    # The TLS files are read first, so a bad one stops the start before anything connects.
    security = server_security(settings)
    http_tls = http_ssl_context(settings) if settings.http_address else None
    peers = channel_credentials(settings)
    address = settings.listen_address or settings.gateway_address
    authenticate, keys = _access(settings, address)
    # The gateway validates against the model's configuration files; it never loads its weights.
    model = resolve_model(settings.model)
    broker = make_broker(settings)
    await broker.connect()
    jobs = JobStore.from_settings(settings)
    await check_redis_durability(jobs.redis)
    embedder = channel(settings.embedder_address, peers)
    indexer = channel(settings.indexer_address, peers)
    outbox = chunk_outbox(broker, jobs, settings)
    if settings.faults:
        outbox = FaultyOutbox(outbox, Faults(settings.faults, "gateway"), jobs)
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
        address,
        [lambda s: ingest_service_pb2_grpc.add_IngestServiceServicer_to_server(servicer, s)],
        "gateway",
        security,
        interceptors=[AccessInterceptor(authenticate)],
        outer_interceptors=[RpcMetricsInterceptor()],
        services=[ingest_service_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name],
    )
    companions = []
    if settings.http_address:
        http = HttpGateway(settings.http_address, servicer, authenticate, settings, http_tls)
        companions.append(http)
        log.info("HTTP/JSON API on %s://%s", http.scheme, settings.http_address)
    stuck = metrics.StuckJobsCollector(
        asyncio.get_running_loop(), lambda: jobs.count_stuck(settings.stuck_after_s)
    )
    exporter = metrics.start_metrics_server(
        settings.metrics_address, "gateway", [*metrics.GATEWAY, stuck]
    )
    # Stuck jobs whose task the broker lost get it published again, into the same target as
    # new jobs' tasks (the chunk stream, or the outbox the relay publishes from).
    repairer = Repairer(
        jobs,
        broker,
        outbox.target,
        stuck_after_s=settings.stuck_after_s,
        max_repairs=settings.max_repairs,
    )

    def stop_background() -> None:
        outbox.stop()
        repairer.stop()
        if keys is not None:
            keys.stop()

    try:
        # The outbox relay (RabbitMQ), the repair of stuck jobs and the keys file's reloader run
        # for as long as the gateway serves.
        await run_until_signalled(
            server,
            background=[
                *outbox.background(),
                repairer.run,
                *([keys.watch] if keys is not None else []),
            ],
            on_stop=stop_background,
            grace_s=settings.shutdown_grace_s,
            companions=companions,
        )
    finally:
        if exporter is not None:
            await asyncio.to_thread(exporter.close)
        await embedder.close(None)
        await indexer.close(None)
        await broker.close()
        await jobs.close()
