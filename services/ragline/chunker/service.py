"""ChunkerService: previews how a document would be cut, without ingesting it."""

from __future__ import annotations

import asyncio
from typing import Any

from ragline.chunker.cutting import cut_document
from ragline.chunker.splitter import TokenSplitter
from ragline.chunking_config import resolve_chunking
from ragline.config import Settings
from ragline.content_types import check_content, normalize_content_type
from ragline.model_info import ModelInfo
from ragline.v1 import chunker_service_pb2, chunker_service_pb2_grpc, queue_pb2


class ChunkerServicer(chunker_service_pb2_grpc.ChunkerServiceServicer):
    def __init__(self, splitter: TokenSplitter, model: ModelInfo, settings: Settings) -> None:
        self._splitter = splitter
        self._model = model
        self._settings = settings

    async def Chunk(
        self, request: chunker_service_pb2.ChunkRequest, context: Any
    ) -> chunker_service_pb2.ChunkResponse:
        content_type = normalize_content_type(request.content_type)
        check_content(request.content, content_type)
        size, overlap = resolve_chunking(
            request.chunk_size if request.HasField("chunk_size") else None,
            request.chunk_overlap if request.HasField("chunk_overlap") else None,
            self._model,
            self._settings,
        )
        chunks = await asyncio.to_thread(
            cut_document, self._splitter, request.content, content_type, size, overlap
        )
        return chunker_service_pb2.ChunkResponse(
            chunks=[
                queue_pb2.TextChunk(chunk_index=c.index, text=c.text, token_count=c.token_count)
                for c in chunks
            ]
        )
