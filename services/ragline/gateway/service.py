"""IngestService: converts protobufs to domain calls and back, nothing else."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any, TypeVar

from grpc import aio

from ragline import metrics, tracing
from ragline.access import current_caller
from ragline.config import Settings
from ragline.convert import dead_letter_to_pb, job_to_pb, stage_from_pb
from ragline.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from ragline.gateway.dead_letters import DeadLetterOps
from ragline.gateway.intake import Accepted, Intake
from ragline.gateway.validation import (
    IngestCommand,
    require_id,
    validate_ingest,
    validate_search,
)
from ragline.grpc_status import error_from_rpc
from ragline.jobs.model import Job, JobState, Stage
from ragline.jobs.store import JobStore
from ragline.jobs.versions import VersionStore
from ragline.model_info import ModelInfo
from ragline.telemetry import log_context
from ragline.v1 import (
    embedder_service_pb2,
    embedder_service_pb2_grpc,
    indexer_service_pb2,
    indexer_service_pb2_grpc,
)
from ragline_client.v1 import ingest_service_pb2, ingest_service_pb2_grpc, job_pb2

T = TypeVar("T")


class IngestServicer(ingest_service_pb2_grpc.IngestServiceServicer):
    def __init__(
        self,
        settings: Settings,
        model: ModelInfo,
        intake: Intake,
        jobs: JobStore,
        versions: VersionStore,
        dead_letters: DeadLetterOps,
        embedder: aio.Channel,
        indexer: aio.Channel,
    ) -> None:
        self._settings = settings
        self._model = model
        self._intake = intake
        self._jobs = jobs
        self._versions = versions
        self._dead_letters = dead_letters
        self._embedder = embedder_service_pb2_grpc.EmbedderServiceStub(embedder)
        self._indexer = indexer_service_pb2_grpc.IndexerServiceStub(indexer)
        self._tenant_label = metrics.TenantLabels(settings.metrics_tenants)

    # -- ingest -------------------------------------------------------------------------------
    def _tenant(self) -> str:
        """The tenant the call acts for, from its API key (`default` with auth off): every read
        and write below is scoped to it."""
        return current_caller().tenant

    def _letters_tenant(self) -> str | None:
        """Whose dead letters the call sees: its tenant's; every tenant's (None) for an operator
        key, and with auth off, whose caller holds every scope."""
        caller = current_caller()
        return None if caller.is_operator else caller.tenant

    async def _own_job(self, tenant: str, job_id: str) -> Job:
        """The job, if it is `tenant`'s; another tenant's job is NotFound, exactly as a missing
        one, so ids reveal nothing across tenants."""
        job = await self._jobs.get(require_id("job_id", job_id))
        if job.tenant != tenant:
            raise self._jobs.not_found(job_id)
        return job

    def _validated(
        self, request: ingest_service_pb2.IngestRequest, now_ns: int, tenant: str
    ) -> Accepted:
        config = request.config
        meta = request.metadata
        cmd = IngestCommand(
            document_id=request.document_id,
            content=request.content,
            content_type=request.content_type,
            chunk_size=config.chunk_size if config.HasField("chunk_size") else None,
            chunk_overlap=config.chunk_overlap if config.HasField("chunk_overlap") else None,
            embedding_model=config.embedding_model,
            vector_dimension=config.vector_dimension,
            request_id=request.request_id,
            uploaded_by=meta.uploaded_by,
            original_filename=meta.original_filename,
            # Read-only here: validation only looks at the entries, so no copy.
            attributes=meta.attributes,
        )
        valid = validate_ingest(cmd, self._model, self._settings)
        if meta.HasField("upload_time"):
            # The chunk task copies the metadata anyway; the request's own is used as is.
            metadata = meta
        else:
            metadata = job_pb2.DocumentMetadata()
            metadata.CopyFrom(meta)
            metadata.upload_time.seconds, metadata.upload_time.nanos = divmod(now_ns, 1_000_000_000)
        return Accepted(
            tenant=tenant,
            document_id=request.document_id,
            request_id=request.request_id,
            content=request.content,
            content_type=valid.content_type,
            chunk_size=valid.chunk_size,
            chunk_overlap=valid.chunk_overlap,
            embedding_model=self._model.name,
            metadata=metadata,
        )

    @contextlib.contextmanager
    def _counted(self, tenant: str, documents: int) -> Iterator[None]:
        """Counts `documents` as accepted when the block returns, refused (by why) when it raises."""
        label = self._tenant_label(tenant)
        try:
            yield
        except Exception as exc:
            metrics.DOCUMENTS_REFUSED.labels(label, metrics.refusal_reason(exc)).inc(documents)
            raise
        metrics.DOCUMENTS_ACCEPTED.labels(label).inc(documents)

    async def Ingest(
        self, request: ingest_service_pb2.IngestRequest, context: Any
    ) -> ingest_service_pb2.IngestResponse:
        tenant = self._tenant()
        with self._counted(tenant, 1):
            doc = self._validated(request, time.time_ns(), tenant)
            with log_context(document_id=doc.document_id):
                (job,) = await self._accept(context, [doc])
        return ingest_service_pb2.IngestResponse(job=self._job_pb(job))

    async def _accept(self, context: Any, docs: Sequence[Accepted]) -> list[Job]:
        """Accepts `docs`; with tracing on, each under an accept span of its own that continues
        the caller's `traceparent` (a new trace per job when there is none: IngestBatch's
        documents then make a trace each) and whose context the chunk task carries on."""
        if not tracing.enabled():
            return await self._intake.accept(docs)
        parent = tracing.grpc_parent(context.invocation_metadata())
        spans = [
            tracing.start_span(
                "ragline.gateway.accept",
                parent,
                {"ragline.document_id": d.document_id},
                server=True,
            )
            for d in docs
        ]
        try:
            jobs = await self._intake.accept(
                [
                    dataclasses.replace(d, trace_context=span.carrier())
                    for d, span in zip(docs, spans, strict=True)
                ]
            )
            for span, job in zip(spans, jobs, strict=True):
                span.set("ragline.job_id", job.job_id)
            return jobs
        except Exception as exc:
            for span in spans:
                span.fail(exc)
            raise
        finally:
            for span in spans:
                span.end()

    async def IngestBatch(
        self, request: ingest_service_pb2.IngestBatchRequest, context: Any
    ) -> ingest_service_pb2.IngestBatchResponse:
        documents = request.documents
        tenant = self._tenant()
        with self._counted(tenant, len(documents)):
            jobs = await self._accept_batch(context, documents, tenant)
        return ingest_service_pb2.IngestBatchResponse(jobs=[self._job_pb(j) for j in jobs])

    async def _accept_batch(self, context: Any, documents: Any, tenant: str) -> list[Job]:
        if not documents:
            raise InvalidArgument("documents", "must not be empty")
        if len(documents) > self._settings.max_batch_documents:
            raise InvalidArgument(
                "documents",
                f"has {len(documents)} documents; at most "
                f"{self._settings.max_batch_documents} per call",
            )
        now_ns = time.time_ns()  # one upload time for the whole batch
        accepted = []
        for i, doc in enumerate(documents):
            try:
                accepted.append(self._validated(doc, now_ns, tenant))
            except InvalidArgument as exc:
                raise exc.at(f"documents[{i}]") from None
        return await self._accept(context, accepted)

    # -- jobs ---------------------------------------------------------------------------------
    def _job_pb(self, job: Job) -> job_pb2.Job:
        return job_to_pb(job, stuck_after_s=self._settings.stuck_after_s)

    async def GetJob(
        self, request: ingest_service_pb2.GetJobRequest, context: Any
    ) -> ingest_service_pb2.GetJobResponse:
        job = await self._own_job(self._tenant(), request.job_id)
        return ingest_service_pb2.GetJobResponse(job=self._job_pb(job))

    async def WatchJob(
        self, request: ingest_service_pb2.WatchJobRequest, context: Any
    ) -> AsyncIterator[ingest_service_pb2.WatchJobResponse]:
        # Checked once: a job's tenant never changes.
        owned = await self._own_job(self._tenant(), request.job_id)
        async for job in self._jobs.watch(owned.job_id):
            yield ingest_service_pb2.WatchJobResponse(job=self._job_pb(job))

    # -- search and documents -----------------------------------------------------------------
    async def Search(
        self, request: ingest_service_pb2.SearchRequest, context: Any
    ) -> ingest_service_pb2.SearchResponse:
        top_k = validate_search(request.query, request.top_k)
        embedded = await self._call(
            "embedder",
            self._settings.embedder_address,
            self._embedder.Embed(
                embedder_service_pb2.EmbedRequest(texts=[request.query]), timeout=30
            ),
        )
        found = await self._call(
            "indexer",
            self._settings.indexer_address,
            self._indexer.Search(
                indexer_service_pb2.IndexerServiceSearchRequest(
                    vector=embedded.vectors[0].values,
                    top_k=top_k,
                    document_ids=request.document_ids,
                    tenant=self._tenant(),
                ),
                timeout=30,
            ),
        )
        return ingest_service_pb2.SearchResponse(hits=found.hits)

    async def GetDocument(
        self, request: ingest_service_pb2.GetDocumentRequest, context: Any
    ) -> ingest_service_pb2.GetDocumentResponse:
        document_id = require_id("document_id", request.document_id)
        tenant = self._tenant()
        versions = await self._versions.document_versions(tenant, document_id)
        if versions is None:
            raise NotFound(f"document {document_id!r} was never ingested")
        counted = await self._call(
            "indexer",
            self._settings.indexer_address,
            self._indexer.CountChunks(
                indexer_service_pb2.CountChunksRequest(document_id=document_id, tenant=tenant),
                timeout=30,
            ),
        )
        if versions.live == 0 and versions.floor == versions.seq and counted.chunk_count == 0:
            raise NotFound(f"document {document_id!r} was deleted")
        return ingest_service_pb2.GetDocumentResponse(
            document_id=document_id,
            live_version=versions.live,
            latest_version=versions.seq,
            chunk_count=counted.chunk_count,
        )

    async def DeleteDocument(
        self, request: ingest_service_pb2.DeleteDocumentRequest, context: Any
    ) -> ingest_service_pb2.DeleteDocumentResponse:
        document_id = require_id("document_id", request.document_id)
        deleted = await self._call(
            "indexer",
            self._settings.indexer_address,
            self._indexer.DeleteDocument(
                indexer_service_pb2.IndexerServiceDeleteDocumentRequest(
                    document_id=document_id, tenant=self._tenant()
                ),
                timeout=60,
            ),
        )
        return ingest_service_pb2.DeleteDocumentResponse(chunks_deleted=deleted.chunks_deleted)

    # -- cancellation and dead letters ---------------------------------------------------------
    async def CancelJob(
        self, request: ingest_service_pb2.CancelJobRequest, context: Any
    ) -> ingest_service_pb2.CancelJobResponse:
        job = await self._own_job(self._tenant(), request.job_id)
        job_id = job.job_id
        if job.state != JobState.CANCELLED:
            await self._jobs.move(job_id, JobState.CANCELLED, last_error="cancelled by request")
            job = await self._jobs.get(job_id)
            if job.state != JobState.CANCELLED:
                raise FailedPrecondition(
                    f"job {job_id!r} is already {job.state.value}; nothing to cancel"
                )
        # Every stage drops the job's remaining tasks; remove what the indexer already wrote.
        # (An index batch in flight right now removes its own rows when it sees the cancellation.)
        await self._call(
            "indexer",
            self._settings.indexer_address,
            self._indexer.DeleteDocument(
                indexer_service_pb2.IndexerServiceDeleteDocumentRequest(
                    document_id=job.document_id,
                    only_version=job.document_version,
                    tenant=job.tenant,
                ),
                timeout=60,
            ),
        )
        return ingest_service_pb2.CancelJobResponse(job=self._job_pb(job))

    async def ListDeadLetters(
        self, request: ingest_service_pb2.ListDeadLettersRequest, context: Any
    ) -> ingest_service_pb2.ListDeadLettersResponse:
        stage = _stage(request.stage)
        page, token = await self._dead_letters.list(
            stage, request.page_size, request.page_token, tenant=self._letters_tenant()
        )
        return ingest_service_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter_to_pb(d, stage, doc) for d, doc in page],
            next_page_token=token,
        )

    async def RequeueDeadLetters(
        self, request: ingest_service_pb2.RequeueDeadLettersRequest, context: Any
    ) -> ingest_service_pb2.RequeueDeadLettersResponse:
        count = await self._dead_letters.requeue(
            _stage(request.stage),
            list(request.dead_letter_ids),
            tenant=self._letters_tenant(),
        )
        return ingest_service_pb2.RequeueDeadLettersResponse(requeued=count)

    async def PurgeDeadLetters(
        self, request: ingest_service_pb2.PurgeDeadLettersRequest, context: Any
    ) -> ingest_service_pb2.PurgeDeadLettersResponse:
        count = await self._dead_letters.purge(
            _stage(request.stage),
            list(request.dead_letter_ids),
            tenant=self._letters_tenant(),
        )
        return ingest_service_pb2.PurgeDeadLettersResponse(purged=count)

    @staticmethod
    async def _call(name: str, address: str, call: Awaitable[T]) -> T:
        """Awaits a call to another service, turning its failures into ragline errors."""
        try:
            return await call
        except aio.AioRpcError as exc:
            raise error_from_rpc(exc, name, address) from exc


def _stage(value: int) -> Stage:
    try:
        return stage_from_pb(value)
    except KeyError:
        raise InvalidArgument("stage", "must be STAGE_CHUNK, STAGE_EMBED or STAGE_INDEX") from None
