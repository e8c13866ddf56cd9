"""IndexerService: search, count and delete, answered by the one process that opens the store."""

from __future__ import annotations

import asyncio
from typing import Any

from ragline.convert import metadata_from_dict
from ragline.errors import InvalidArgument, NotFound
from ragline.indexer.vector_store import MILVUS_MAX_RESULTS, Hit, VectorStore
from ragline.jobs.versions import VersionStore
from ragline.tenants import tenant_or_default
from ragline.v1 import indexer_service_pb2, indexer_service_pb2_grpc
from ragline_client.v1 import ingest_service_pb2

# Milvus caps one search's limit; over-fetching stops there.
MAX_FETCH = MILVUS_MAX_RESULTS


class IndexerServicer(indexer_service_pb2_grpc.IndexerServiceServicer):
    def __init__(self, versions: VersionStore, store: VectorStore) -> None:
        self._versions = versions
        self._store = store

    async def Search(
        self, request: indexer_service_pb2.IndexerServiceSearchRequest, context: Any
    ) -> indexer_service_pb2.IndexerServiceSearchResponse:
        if len(request.vector) != self._store.dimension:
            raise InvalidArgument(
                "vector",
                f"has {len(request.vector)} dimensions; the index holds {self._store.dimension}",
            )
        hits = await self.search_live(
            tenant_or_default(request.tenant),
            list(request.vector),
            request.top_k,
            list(request.document_ids),
        )
        return indexer_service_pb2.IndexerServiceSearchResponse(
            hits=[
                ingest_service_pb2.SearchHit(
                    document_id=h.document_id,
                    chunk_index=h.chunk_index,
                    text=h.text,
                    score=h.score,
                    metadata=metadata_from_dict(h.metadata),
                    document_version=h.document_version,
                )
                for h in hits
            ]
        )

    async def search_live(
        self, tenant: str, vector: list[float], top_k: int, document_ids: list[str]
    ) -> list[Hit]:
        """The tenant's top_k hits from each document's live version only.

        Chunks of versions still in flight, or replaced but not yet removed, are skipped; when
        they crowd out the top_k, fetch more (up to MAX_FETCH).
        """
        fetch = top_k * 2 + 8
        while True:
            raw = await asyncio.to_thread(
                self._store.search, tenant, vector, min(fetch, MAX_FETCH), document_ids=document_ids
            )
            live = await self._versions.live_versions(tenant, (h.document_id for h in raw))
            hits = [h for h in raw if live.get(h.document_id, 0) == h.document_version]
            if len(hits) >= top_k or len(raw) < min(fetch, MAX_FETCH) or fetch >= MAX_FETCH:
                return hits[:top_k]
            fetch *= 4

    async def CountChunks(
        self, request: indexer_service_pb2.CountChunksRequest, context: Any
    ) -> indexer_service_pb2.CountChunksResponse:
        count = await asyncio.to_thread(
            self._store.count, request.document_id or None, tenant=tenant_or_default(request.tenant)
        )
        return indexer_service_pb2.CountChunksResponse(chunk_count=count)

    async def DeleteDocument(
        self, request: indexer_service_pb2.IndexerServiceDeleteDocumentRequest, context: Any
    ) -> indexer_service_pb2.IndexerServiceDeleteDocumentResponse:
        if not request.document_id:
            raise InvalidArgument("document_id", "must not be empty")
        tenant = tenant_or_default(request.tenant)
        if request.only_version:
            removed = await asyncio.to_thread(
                self._store.delete_document,
                tenant,
                request.document_id,
                only_version=request.only_version,
            )
            return indexer_service_pb2.IndexerServiceDeleteDocumentResponse(chunks_deleted=removed)
        # Void the versions first, so a version still in flight cannot come back after the delete.
        known = await self._versions.delete_document(tenant, request.document_id)
        deleted = await asyncio.to_thread(self._store.delete_document, tenant, request.document_id)
        if not known and not deleted:
            raise NotFound(f"document {request.document_id!r} is not in the index")
        return indexer_service_pb2.IndexerServiceDeleteDocumentResponse(chunks_deleted=deleted)
