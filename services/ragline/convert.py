"""Conversions between protobuf messages and domain records, in one place."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ragline.broker.base import DeadLetter
from ragline.jobs.model import Job, JobState, Stage
from ragline_client.v1 import ingest_service_pb2, job_pb2

_STATE_TO_PB = {
    JobState.ACCEPTED: job_pb2.JOB_STATE_ACCEPTED,
    JobState.ACTIVE: job_pb2.JOB_STATE_ACTIVE,
    JobState.COMPLETED: job_pb2.JOB_STATE_COMPLETED,
    JobState.FAILED: job_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: job_pb2.JOB_STATE_CANCELLED,
}
_STAGE_TO_PB = {
    Stage.CHUNK: job_pb2.STAGE_CHUNK,
    Stage.EMBED: job_pb2.STAGE_EMBED,
    Stage.INDEX: job_pb2.STAGE_INDEX,
}


def job_to_pb(job: Job, *, stuck_after_s: float = 0.0) -> job_pb2.Job:
    """The Job message for `job`; with `stuck_after_s`, `stuck` says whether it is stuck now."""
    pb = job_pb2.Job(
        job_id=job.job_id,
        document_id=job.document_id,
        document_version=job.document_version,
        state=_STATE_TO_PB[job.state],
        progress=job_pb2.JobProgress(
            chunks_total=job.progress.chunks_total,
            chunks_embedded=job.progress.chunks_embedded,
            chunks_indexed=job.progress.chunks_indexed,
        ),
        last_error=job.last_error,
        last_error_stage=_STAGE_TO_PB.get(job.last_error_stage, job_pb2.STAGE_UNSPECIFIED)
        if job.last_error_stage
        else job_pb2.STAGE_UNSPECIFIED,
        attempts=job.attempts,
        request_id=job.request_id,
        stuck=stuck_after_s > 0 and job.is_stuck(time.time(), stuck_after_s),
    )
    for field, seconds in (
        ("create_time", job.create_time),
        ("update_time", job.update_time),
        ("finish_time", job.finish_time),
    ):
        if seconds:
            getattr(pb, field).FromNanoseconds(int(seconds * 1e9))
    return pb


_PB_TO_STAGE = {v: k for k, v in _STAGE_TO_PB.items()}


def stage_from_pb(value: int) -> Stage:
    """The stage for a protobuf Stage value; KeyError for STAGE_UNSPECIFIED or unknown values."""
    return _PB_TO_STAGE[value]  # type: ignore[index]


def dead_letter_to_pb(
    letter: DeadLetter, stage: Stage, document_id: str
) -> ingest_service_pb2.DeadLetter:
    pb = ingest_service_pb2.DeadLetter(
        dead_letter_id=letter.dead_letter_id,
        stage=_STAGE_TO_PB[stage],
        job_id=letter.job_id,
        document_id=document_id,
        error_type=letter.error_type,
        error_message=letter.error_message,
        attempts=letter.attempts,
        message_bytes=len(letter.body),
    )
    if letter.first_failure_time:
        pb.first_failure_time.FromNanoseconds(int(letter.first_failure_time * 1e9))
    if letter.last_failure_time:
        pb.last_failure_time.FromNanoseconds(int(letter.last_failure_time * 1e9))
    return pb


def metadata_to_dict(md: job_pb2.DocumentMetadata) -> dict[str, Any]:
    """The JSON stored beside each chunk in the vector store."""
    out: dict[str, Any] = {
        "uploaded_by": md.uploaded_by,
        "original_filename": md.original_filename,
        "attributes": dict(md.attributes),
    }
    if md.HasField("upload_time"):
        out["upload_time"] = md.upload_time.ToDatetime(tzinfo=UTC).isoformat()
    return out


def metadata_from_dict(data: dict[str, Any]) -> job_pb2.DocumentMetadata:
    md = job_pb2.DocumentMetadata(
        uploaded_by=str(data.get("uploaded_by", "")),
        original_filename=str(data.get("original_filename", "")),
        attributes={str(k): str(v) for k, v in (data.get("attributes") or {}).items()},
    )
    if data.get("upload_time"):
        md.upload_time.FromDatetime(datetime.fromisoformat(data["upload_time"]))
    return md
