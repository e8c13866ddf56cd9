"""The chunker process."""

from __future__ import annotations

from ragline.chunker.handler import ChunkHandler
from ragline.chunker.service import ChunkerServicer
from ragline.chunker.splitter import TokenSplitter
from ragline.config import Settings
from ragline.model_info import resolve_model
from ragline.stage.process import serve_stage
from ragline.tls import server_security
from ragline.v1 import chunker_service_pb2, chunker_service_pb2_grpc


async def run(settings: Settings) -> None:
    security = server_security(settings)  # before the model: a bad TLS file fails at once
    model = resolve_model(settings.model)
    splitter = TokenSplitter(model.path / "tokenizer.json")
    servicer = ChunkerServicer(splitter, model, settings)
    await serve_stage(
        settings,
        name="chunker",
        address=settings.chunker_address,
        security=security,
        make_handler=lambda broker, jobs: ChunkHandler(
            broker, jobs, splitter, settings.chunks_per_embed_task
        ),
        services=[chunker_service_pb2.DESCRIPTOR.services_by_name["ChunkerService"].full_name],
        register=[
            lambda s: chunker_service_pb2_grpc.add_ChunkerServiceServicer_to_server(servicer, s)
        ],
        # Documents can be large: read a few at a time so one process never holds many in memory.
        batch_size=min(settings.read_batch_size, 8),
    )
