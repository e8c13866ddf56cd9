"""The indexer process."""

from __future__ import annotations

import logging

from ragline import metrics
from ragline.config import Settings
from ragline.indexer.handler import IndexHandler
from ragline.indexer.service import IndexerServicer
from ragline.indexer.vector_store import VectorStore
from ragline.jobs.store import JobStore
from ragline.jobs.versions import VersionStore
from ragline.model_info import resolve_model
from ragline.stage.process import serve_stage
from ragline.tls import server_security
from ragline.v1 import indexer_service_pb2, indexer_service_pb2_grpc

log = logging.getLogger(__name__)


async def run(settings: Settings) -> None:
    security = server_security(settings)  # before the model: a bad TLS file fails at once
    model = resolve_model(settings.model)
    store = VectorStore(
        settings.milvus_uri,
        settings.milvus_collection,
        model.dimension,
        token=settings.milvus_token,
    )
    store.ensure_collection()
    log.info("indexer: collection %s at %s", settings.milvus_collection, settings.milvus_uri)
    # The servicer reads document versions through its own Redis connection.
    jobs = JobStore.from_settings(settings)
    servicer = IndexerServicer(VersionStore.beside(jobs), store)
    try:
        await serve_stage(
            settings,
            name="indexer",
            address=settings.indexer_address,
            security=security,
            make_handler=lambda broker, stage_jobs: IndexHandler(
                stage_jobs,
                VersionStore.beside(stage_jobs),
                store,
                metrics.TenantLabels(settings.metrics_tenants),
            ),
            services=[indexer_service_pb2.DESCRIPTOR.services_by_name["IndexerService"].full_name],
            own_metrics=metrics.INDEXER,
            register=[
                lambda s: indexer_service_pb2_grpc.add_IndexerServiceServicer_to_server(servicer, s)
            ],
        )
    finally:
        await jobs.close()
        store.close()
