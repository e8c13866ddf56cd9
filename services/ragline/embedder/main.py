"""The embedder process."""

from __future__ import annotations

import logging

from ragline import metrics
from ragline.config import Settings
from ragline.embedder.encoder import Encoder
from ragline.embedder.handler import EmbedHandler
from ragline.embedder.service import EmbedderServicer
from ragline.embedder.text_encoder import TextEncoder
from ragline.model_info import resolve_model
from ragline.stage.process import serve_stage
from ragline.tls import ServerSecurity, server_security
from ragline.v1 import embedder_service_pb2, embedder_service_pb2_grpc

log = logging.getLogger(__name__)


async def run(settings: Settings) -> None:
    security = server_security(settings)  # before the model: a bad TLS file fails at once
    model = resolve_model(settings.model)
    encoder = Encoder(
        model, device=settings.device, threads=settings.torch_threads, precision=settings.precision
    )
    await serve_encoder(settings, security, encoder)


async def serve_encoder(settings: Settings, security: ServerSecurity, encoder: TextEncoder) -> None:
    """The embedder's queue work and EmbedderService around `encoder`, until SIGTERM; closes
    it. `run` passes the model; no setting selects anything else (the bench's stand-in for the
    model, bench/standin_embedder.py, calls this from outside the package)."""
    log.info(
        "embedder: model %s (%d dims) on %s in %s (asked for %s)",
        encoder.info.name,
        encoder.info.dimension,
        encoder.device,
        encoder.precision,
        settings.precision,
    )
    metrics.MODEL_INFO.info(
        {
            "model": encoder.info.name,
            "dimension": str(encoder.info.dimension),
            "device": encoder.device,
            "precision": encoder.precision,
        }
    )
    servicer = EmbedderServicer(encoder)
    try:
        await _serve(settings, security, encoder, servicer)
    finally:
        encoder.close()


async def _serve(
    settings: Settings, security: ServerSecurity, encoder: TextEncoder, servicer: EmbedderServicer
) -> None:
    await serve_stage(
        settings,
        name="embedder",
        address=settings.embedder_address,
        security=security,
        # Two consumers: while one batch is in the model, the next is read and the last is
        # published, so the model never waits on Redis.
        consumers=2,
        gather_s=settings.embed_gather_ms / 1000,
        own_metrics=metrics.EMBEDDER,
        make_handler=lambda broker, jobs: EmbedHandler(
            broker, jobs, encoder, settings.embed_batch_tokens
        ),
        services=[embedder_service_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name],
        register=[
            lambda s: embedder_service_pb2_grpc.add_EmbedderServiceServicer_to_server(servicer, s)
        ],
    )
