"""The plain, immutable values the client hands out and takes in instead of protobuf messages."""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ragline_client._errors import InvalidArgumentError

# Media types the gateway accepts, by file extension (lower case, with the dot).
CONTENT_TYPES: Mapping[str, str] = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}


def guess_content_type(path: str | os.PathLike[str]) -> str | None:
    """The media type ragline uses for a file with this name, or None for an unsupported extension.

    Supported: ``.txt`` ``.text`` (text/plain), ``.md`` ``.markdown`` (text/markdown),
    ``.html`` ``.htm`` (text/html) and ``.pdf`` (application/pdf); case does not matter.
    """
    return CONTENT_TYPES.get(os.path.splitext(os.fspath(path))[1].lower())


class JobState(enum.StrEnum):
    """Where an ingestion job stands. A job moves forward only: accepted -> active -> a terminal state."""

    ACCEPTED = "accepted"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the job is done: completed, failed or cancelled."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class Stage(enum.StrEnum):
    """A pipeline stage, each with its own queue and dead-letter queue."""

    CHUNK = "chunk"
    EMBED = "embed"
    INDEX = "index"

    @classmethod
    def parse(cls, value: Stage | str) -> Stage:
        """The Stage named by `value` ("chunk", "embed" or "index", any case); ValueError otherwise."""
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(repr(s.value) for s in cls)
            raise ValueError(f"unknown stage {value!r}: expected one of {names}") from None


@dataclass(frozen=True)
class Metadata:
    """Where a document came from; stored beside every chunk and returned with search hits.

    `upload_time` is timezone-aware; when None at ingest the gateway fills in the time it accepted
    the document.
    """

    uploaded_by: str = ""
    upload_time: datetime | None = None
    original_filename: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; `upload_time` as an ISO 8601 string or None."""
        return {
            "uploaded_by": self.uploaded_by,
            "upload_time": _iso(self.upload_time),
            "original_filename": self.original_filename,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True)
class Document:
    """One document to ingest. `content` as str is sent UTF-8 encoded.

    Unset chunking fields (None, "") take the deployment's defaults. A `request_id` makes a retried
    ingest return the first job instead of creating another.
    """

    content: bytes | str
    document_id: str
    content_type: str = "text/plain"
    metadata: Metadata | None = None
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    embedding_model: str = ""
    request_id: str = ""

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        document_id: str | None = None,
        content_type: str | None = None,
        metadata: Metadata | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        embedding_model: str = "",
        request_id: str = "",
    ) -> Document:
        """A Document holding the bytes of the file at `path`.

        `document_id` defaults to the file name, `content_type` to the one its extension implies
        (see `guess_content_type`), and `metadata.original_filename` to the file name. Raises
        InvalidArgumentError for an extension ragline does not support when no `content_type` is
        given, and OSError when the file cannot be read.
        """
        name = os.path.basename(os.fspath(path))
        if content_type is None:
            content_type = guess_content_type(name)
            if content_type is None:
                raise InvalidArgumentError(
                    f"{os.fspath(path)}: unsupported file type; use one of "
                    f"{', '.join(CONTENT_TYPES)} or pass content_type",
                    details="content_type",
                    field="content_type",
                )
        metadata = metadata or Metadata()
        if not metadata.original_filename:
            metadata = dataclasses.replace(metadata, original_filename=name)
        with open(path, "rb") as f:
            content = f.read()
        return cls(
            content=content,
            document_id=name if document_id is None else document_id,
            content_type=content_type,
            metadata=metadata,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            embedding_model=embedding_model,
            request_id=request_id,
        )


@dataclass(frozen=True)
class JobProgress:
    """A job's chunks through the stages; `chunks_total` is zero until chunking is done."""

    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_indexed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "chunks_total": self.chunks_total,
            "chunks_embedded": self.chunks_embedded,
            "chunks_indexed": self.chunks_indexed,
        }


@dataclass(frozen=True)
class Job:
    """One document's way through the pipeline.

    `last_error_stage` is "chunk", "embed", "index" or "" when there was no error. Times are
    timezone-aware (UTC); `finish_time` is None until the job reaches a terminal state.
    """

    job_id: str
    document_id: str
    document_version: int
    state: JobState
    progress: JobProgress = field(default_factory=JobProgress)
    last_error: str = ""
    last_error_stage: str = ""
    attempts: int = 0
    request_id: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    finish_time: datetime | None = None
    # Unfinished, and nothing has changed it for the server's RAGLINE_STUCK_AFTER_S.
    stuck: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; the state as its lower-case name and times as ISO 8601 strings."""
        return {
            "job_id": self.job_id,
            "document_id": self.document_id,
            "document_version": self.document_version,
            "state": self.state.value,
            "progress": self.progress.to_dict(),
            "last_error": self.last_error,
            "last_error_stage": self.last_error_stage,
            "attempts": self.attempts,
            "request_id": self.request_id,
            "create_time": _iso(self.create_time),
            "update_time": _iso(self.update_time),
            "finish_time": _iso(self.finish_time),
            "stuck": self.stuck,
        }


@dataclass(frozen=True)
class Hit:
    """One chunk that matched a search; `score` is cosine similarity, higher is closer."""

    document_id: str
    chunk_index: int
    text: str
    score: float
    metadata: Metadata = field(default_factory=Metadata)
    document_version: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the same keys as the fields."""
        return {
            "document_id": self.document_id,
            "chunk_index": self.chunk_index,
            "text": self.text,
            "score": self.score,
            "metadata": self.metadata.to_dict(),
            "document_version": self.document_version,
        }


@dataclass(frozen=True)
class DocumentInfo:
    """A document in the index: its searchable (`live_version`, 0 while the first version is in
    flight) and newest accepted version, and how many chunks the index holds for it."""

    document_id: str
    live_version: int
    latest_version: int
    chunk_count: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the same keys as the fields."""
        return {
            "document_id": self.document_id,
            "live_version": self.live_version,
            "latest_version": self.latest_version,
            "chunk_count": self.chunk_count,
        }


@dataclass(frozen=True)
class DeadLetter:
    """A task a stage gave up on, kept in the stage's dead-letter queue until requeued or purged.

    `job_id` is empty when the gateway could not read the original message, and `document_id` when
    it is unknown. Times are timezone-aware (UTC), or None when the broker did not record them;
    `message_bytes` is the size of the original message.
    """

    dead_letter_id: str
    stage: Stage
    job_id: str = ""
    document_id: str = ""
    error_type: str = ""
    error_message: str = ""
    attempts: int = 0
    first_failure_time: datetime | None = None
    last_failure_time: datetime | None = None
    message_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; the stage as its name and times as ISO 8601 strings or None."""
        return {
            "dead_letter_id": self.dead_letter_id,
            "stage": self.stage.value,
            "job_id": self.job_id,
            "document_id": self.document_id,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "attempts": self.attempts,
            "first_failure_time": _iso(self.first_failure_time),
            "last_failure_time": _iso(self.last_failure_time),
            "message_bytes": self.message_bytes,
        }


@dataclass(frozen=True)
class DeadLetterPage:
    """One page of a dead-letter queue, oldest first; pass `next_page_token` to get the next page.
    It is empty on the last page."""

    dead_letters: list[DeadLetter]
    next_page_token: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the same keys as the fields."""
        return {
            "dead_letters": [d.to_dict() for d in self.dead_letters],
            "next_page_token": self.next_page_token,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
