"""Conversions between the generated protobuf messages and the client's own types."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ragline.v1 import ingest_service_pb2 as pb
from ragline.v1 import job_pb2
from ragline_client._errors import RaglineClientError
from ragline_client._types import Document, DocumentInfo, Hit, Job, JobProgress, JobState, Metadata

_STATES: dict[int, JobState] = {
    job_pb2.JOB_STATE_ACCEPTED: JobState.ACCEPTED,
    job_pb2.JOB_STATE_ACTIVE: JobState.ACTIVE,
    job_pb2.JOB_STATE_COMPLETED: JobState.COMPLETED,
    job_pb2.JOB_STATE_FAILED: JobState.FAILED,
    job_pb2.JOB_STATE_CANCELLED: JobState.CANCELLED,
}

_STAGES: dict[int, str] = {
    job_pb2.STAGE_UNSPECIFIED: "",
    job_pb2.STAGE_CHUNK: "chunk",
    job_pb2.STAGE_EMBED: "embed",
    job_pb2.STAGE_INDEX: "index",
}


def state_from_proto(value: int) -> JobState:
    """The JobState for a proto enum value; unknown values (a newer server) raise."""
    try:
        return _STATES[value]
    except KeyError:
        raise RaglineClientError(
            f"the gateway returned job state {value}, which this client does not know; "
            "upgrade ragline_client",
            code="UNKNOWN",
        ) from None


def state_to_proto(state: JobState) -> job_pb2.JobState.ValueType:
    """The proto enum value for a JobState."""
    return job_pb2.JobState.Value(f"JOB_STATE_{state.name}")


def time_from_proto(msg: job_pb2.Job | job_pb2.DocumentMetadata, name: str) -> datetime | None:
    """The timestamp field `name` of `msg` as an aware UTC datetime, or None when unset."""
    if not msg.HasField(name):  # type: ignore[arg-type]
        return None
    stamp: Timestamp = getattr(msg, name)
    return stamp.ToDatetime(tzinfo=UTC)


def time_to_proto(value: datetime) -> Timestamp:
    """A Timestamp for `value`; a naive datetime is taken as local time, as Python does."""
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def metadata_to_proto(meta: Metadata) -> job_pb2.DocumentMetadata:
    """The DocumentMetadata message for `meta`."""
    msg = job_pb2.DocumentMetadata(
        uploaded_by=meta.uploaded_by,
        original_filename=meta.original_filename,
        attributes=dict(meta.attributes),
    )
    if meta.upload_time is not None:
        msg.upload_time.CopyFrom(time_to_proto(meta.upload_time))
    return msg


def metadata_from_proto(msg: job_pb2.DocumentMetadata) -> Metadata:
    """The Metadata in a DocumentMetadata message."""
    return Metadata(
        uploaded_by=msg.uploaded_by,
        upload_time=time_from_proto(msg, "upload_time"),
        original_filename=msg.original_filename,
        attributes=dict(msg.attributes),
    )


def document_to_proto(doc: Document) -> pb.IngestRequest:
    """The IngestRequest for `doc`; str content is UTF-8 encoded."""
    content = doc.content.encode("utf-8") if isinstance(doc.content, str) else bytes(doc.content)
    msg = pb.IngestRequest(
        document_id=doc.document_id,
        content=content,
        content_type=doc.content_type,
        request_id=doc.request_id,
    )
    if doc.metadata is not None:
        msg.metadata.CopyFrom(metadata_to_proto(doc.metadata))
    if doc.chunk_size is not None:
        msg.config.chunk_size = doc.chunk_size
    if doc.chunk_overlap is not None:
        msg.config.chunk_overlap = doc.chunk_overlap
    if doc.embedding_model:
        msg.config.embedding_model = doc.embedding_model
    return msg


def job_from_proto(msg: job_pb2.Job) -> Job:
    """The Job in a Job message."""
    return Job(
        job_id=msg.job_id,
        document_id=msg.document_id,
        document_version=msg.document_version,
        state=state_from_proto(msg.state),
        progress=JobProgress(
            chunks_total=msg.progress.chunks_total,
            chunks_embedded=msg.progress.chunks_embedded,
            chunks_indexed=msg.progress.chunks_indexed,
        ),
        last_error=msg.last_error,
        last_error_stage=_STAGES.get(msg.last_error_stage, ""),
        attempts=msg.attempts,
        request_id=msg.request_id,
        create_time=time_from_proto(msg, "create_time"),
        update_time=time_from_proto(msg, "update_time"),
        finish_time=time_from_proto(msg, "finish_time"),
    )


def hit_from_proto(msg: pb.SearchHit) -> Hit:
    """The Hit in a SearchHit message."""
    return Hit(
        document_id=msg.document_id,
        chunk_index=msg.chunk_index,
        text=msg.text,
        # The wire value is a float32: keep its meaningful digits, not float64 noise like 0.87300002.
        score=float(f"{msg.score:.7g}"),
        metadata=metadata_from_proto(msg.metadata),
        document_version=msg.document_version,
    )


def document_info_from_proto(msg: pb.GetDocumentResponse) -> DocumentInfo:
    """The DocumentInfo in a GetDocumentResponse."""
    return DocumentInfo(
        document_id=msg.document_id,
        live_version=msg.live_version,
        latest_version=msg.latest_version,
        chunk_count=msg.chunk_count,
    )
