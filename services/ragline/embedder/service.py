"""EmbedderService: embeds search queries with the same model as ingested chunks."""

from __future__ import annotations

import asyncio
from typing import Any

from ragline.embedder.text_encoder import TextEncoder
from ragline.errors import InvalidArgument
from ragline.v1 import embedder_service_pb2, embedder_service_pb2_grpc

MAX_TEXTS = 256


class EmbedderServicer(embedder_service_pb2_grpc.EmbedderServiceServicer):
    def __init__(self, encoder: TextEncoder) -> None:
        self._encoder = encoder

    async def Embed(
        self, request: embedder_service_pb2.EmbedRequest, context: Any
    ) -> embedder_service_pb2.EmbedResponse:
        if not request.texts:
            raise InvalidArgument("texts", "must not be empty")
        if len(request.texts) > MAX_TEXTS:
            raise InvalidArgument("texts", f"at most {MAX_TEXTS} texts per call")
        vectors = await asyncio.to_thread(self._encoder.encode, list(request.texts))
        return embedder_service_pb2.EmbedResponse(
            vectors=[embedder_service_pb2.Vector(values=v.tolist()) for v in vectors],
            model=self._encoder.info.name,
            dimension=self._encoder.info.dimension,
        )
