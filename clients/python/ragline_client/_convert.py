"""Conversions between the generated protobuf messages and the client's own types."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ragline_client._errors import RaglineClientError
from ragline_client._types import (
    DeadLetter,
    DeadLetterPage,
    Document,
    DocumentInfo,
    Hit,
    Job,
    JobProgress,
    JobState,
    Metadata,
    Stage,
)
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import job_pb2

_STATES: dict[int, JobState] = {
    job_pb2.JOB_STATE_ACCEPTED: JobState.ACCEPTED,
    job_pb2.JOB_STATE_ACTIVE: JobState.ACTIVE,
    job_pb2.JOB_STATE_COMPLETED: JobState.COMPLETED,
    job_pb2.JOB_STATE_FAILED: JobState.FAILED,
    job_pb2.JOB_STATE_CANCELLED: JobState.CANCELLED,
}

_STAGES: dict[int, Stage] = {
    job_pb2.STAGE_CHUNK: Stage.CHUNK,
    job_pb2.STAGE_EMBED: Stage.EMBED,
    job_pb2.STAGE_INDEX: Stage.INDEX,
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


def stage_from_proto(value: int) -> Stage:
    """The Stage for a proto enum value; unset or unknown values (a newer server) raise."""
    try:
        return _STAGES[value]
    except KeyError:
        raise RaglineClientError(
            f"the gateway returned stage {value}, which this client does not know; "
            "upgrade ragline_client",
            code="UNKNOWN",
        ) from None


def stage_to_proto(stage: Stage | str) -> job_pb2.Stage.ValueType:
    """The proto enum value for a stage name; ValueError for a name that is not a stage."""
    return job_pb2.Stage.Value(f"STAGE_{Stage.parse(stage).name}")


def time_from_proto(
    msg: job_pb2.Job | job_pb2.DocumentMetadata | pb.DeadLetter, name: str
) -> datetime | None:
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
        last_error_stage=_stage_name(msg.last_error_stage),
        attempts=msg.attempts,
        request_id=msg.request_id,
        create_time=time_from_proto(msg, "create_time"),
        update_time=time_from_proto(msg, "update_time"),
        finish_time=time_from_proto(msg, "finish_time"),
        stuck=msg.stuck,
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


def dead_letter_from_proto(msg: pb.DeadLetter) -> DeadLetter:
    """The DeadLetter in a DeadLetter message."""
    return DeadLetter(
        dead_letter_id=msg.dead_letter_id,
        stage=stage_from_proto(msg.stage),
        job_id=msg.job_id,
        document_id=msg.document_id,
        error_type=msg.error_type,
        error_message=msg.error_message,
        attempts=msg.attempts,
        first_failure_time=time_from_proto(msg, "first_failure_time"),
        last_failure_time=time_from_proto(msg, "last_failure_time"),
        message_bytes=msg.message_bytes,
    )


def dead_letter_to_proto(letter: DeadLetter) -> pb.DeadLetter:
    """The DeadLetter message for `letter` (the gateway's direction; used to test the round trip)."""
    msg = pb.DeadLetter(
        dead_letter_id=letter.dead_letter_id,
        stage=stage_to_proto(letter.stage),
        job_id=letter.job_id,
        document_id=letter.document_id,
        error_type=letter.error_type,
        error_message=letter.error_message,
        attempts=letter.attempts,
        message_bytes=letter.message_bytes,
    )
    if letter.first_failure_time is not None:
        msg.first_failure_time.CopyFrom(time_to_proto(letter.first_failure_time))
    if letter.last_failure_time is not None:
        msg.last_failure_time.CopyFrom(time_to_proto(letter.last_failure_time))
    return msg


def dead_letter_page_from_proto(msg: pb.ListDeadLettersResponse) -> DeadLetterPage:
    """The DeadLetterPage in a ListDeadLettersResponse."""
    return DeadLetterPage(
        dead_letters=[dead_letter_from_proto(d) for d in msg.dead_letters],
        next_page_token=msg.next_page_token,
    )


def _stage_name(value: int) -> str:
    """A job's last_error_stage as a name; "" when unset or unknown (it is informational there)."""
    stage = _STAGES.get(value)
    return "" if stage is None else stage.value
