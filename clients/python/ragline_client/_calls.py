"""Each client call as data: which IngestService method, the request, and how to read the answer.

The sync and async clients build their calls here and only send them, so what goes on the wire and
what comes back is decided once for both.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from ragline_client._convert import (
    dead_letter_page_from_proto,
    document_info_from_proto,
    document_to_proto,
    hit_from_proto,
    job_from_proto,
    stage_to_proto,
)
from ragline_client._errors import DeadlineExceededError
from ragline_client._types import DeadLetterPage, Document, DocumentInfo, Hit, Job, Stage
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import job_pb2

T = TypeVar("T")

# How often `wait` asks for the job when the gateway cannot stream it.
POLL_INTERVAL_S = 0.5
# What one IngestBatch call of `ingest_many` carries at most: well inside the gateway's default
# batch limit (1000) and its 80 MiB message limit, so one call never takes long to refuse.
BATCH_MAX_DOCUMENTS = 64
BATCH_MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Unary(Generic[T]):
    """One unary call: the stub's `method` (its attribute name), the `request`, and `read`, which
    turns the response into what the client returns."""

    method: str
    request: Message
    read: Callable[[Any], T]


def _retry_safe(doc: Document) -> Document:
    """`doc` with a request id: its own, or a new one. The calls are retried after UNAVAILABLE,
    which may come after the gateway queued the document; the same id makes the retry answer
    with that job instead of queueing it twice (the TypeScript client does the same)."""
    return doc if doc.request_id else dataclasses.replace(doc, request_id=uuid.uuid4().hex)


def ingest(doc: Document) -> Unary[Job]:
    return Unary("Ingest", document_to_proto(_retry_safe(doc)), _job)


def ingest_batch(documents: Sequence[Document]) -> Unary[list[Job]]:
    request = pb.IngestBatchRequest(
        documents=[document_to_proto(_retry_safe(d)) for d in documents]
    )
    return Unary("IngestBatch", request, _jobs)


def get_job(job_id: str) -> Unary[Job]:
    return Unary("GetJob", pb.GetJobRequest(job_id=job_id), _job)


def search(query: str, top_k: int, document_ids: Sequence[str]) -> Unary[list[Hit]]:
    request = pb.SearchRequest(query=query, top_k=top_k, document_ids=list(document_ids))
    return Unary("Search", request, _hits)


def get_document(document_id: str) -> Unary[DocumentInfo]:
    return Unary(
        "GetDocument", pb.GetDocumentRequest(document_id=document_id), document_info_from_proto
    )


def delete(document_id: str) -> Unary[int]:
    return Unary("DeleteDocument", pb.DeleteDocumentRequest(document_id=document_id), _deleted)


def cancel(job_id: str) -> Unary[Job]:
    return Unary("CancelJob", pb.CancelJobRequest(job_id=job_id), _job)


def list_dead_letters(
    stage: Stage | str | job_pb2.Stage.ValueType, page_size: int, page_token: str
) -> Unary[DeadLetterPage]:
    request = pb.ListDeadLettersRequest(
        stage=_stage(stage), page_size=page_size, page_token=page_token
    )
    return Unary("ListDeadLetters", request, dead_letter_page_from_proto)


def requeue_dead_letters(stage: Stage | str, ids: Sequence[str]) -> Unary[int]:
    request = pb.RequeueDeadLettersRequest(stage=stage_to_proto(stage), dead_letter_ids=_ids(ids))
    return Unary("RequeueDeadLetters", request, _requeued)


def purge_dead_letters(stage: Stage | str, ids: Sequence[str]) -> Unary[int]:
    request = pb.PurgeDeadLettersRequest(stage=stage_to_proto(stage), dead_letter_ids=_ids(ids))
    return Unary("PurgeDeadLetters", request, _purged)


def checked_stage(stage: Stage | str) -> job_pb2.Stage.ValueType:
    """The stage's proto value, checked before any call: ValueError for a name that is no stage."""
    return stage_to_proto(stage)


def watch_request(job_id: str) -> pb.WatchJobRequest:
    return pb.WatchJobRequest(job_id=job_id)


def watched_job(response: pb.WatchJobResponse) -> Job:
    return job_from_proto(response.job)


def ingest_batches(documents: Sequence[Document]) -> list[list[Document]]:
    """`documents` cut, in order, into IngestBatch calls of at most BATCH_MAX_DOCUMENTS documents
    and BATCH_MAX_BYTES bytes of content; a document larger than that travels alone."""
    batches: list[list[Document]] = []
    current: list[Document] = []
    size = 0
    for doc in documents:
        doc_size = len(doc.content.encode() if isinstance(doc.content, str) else doc.content)
        if current and (len(current) >= BATCH_MAX_DOCUMENTS or size + doc_size > BATCH_MAX_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(doc)
        size += doc_size
    if current:
        batches.append(current)
    return batches


def deadline_after(timeout: float | None) -> float | None:
    """The monotonic time `timeout` seconds from now; None for no timeout."""
    return None if timeout is None else time.monotonic() + timeout


def time_left(deadline: float | None) -> float | None:
    """Seconds until `deadline` (never below 0, so the call fails at once); None for no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def bounded_timeout(timeout: float | None, deadline: float | None) -> float | None:
    """One call's timeout: `timeout`, cut to what is left before `deadline` (None: no bound)."""
    left = time_left(deadline)
    if left is None:
        return timeout
    return left if timeout is None else min(timeout, left)


def outlasts(delay: float, deadline: float | None) -> bool:
    """Whether waiting `delay` seconds more would reach `deadline`."""
    return deadline is not None and time.monotonic() + delay >= deadline


class WaitDeadline:
    """The end of one `wait` for a job, for its polling once the job's stream has ended."""

    def __init__(self, job_id: str, timeout: float | None) -> None:
        self.job_id, self.timeout = job_id, timeout
        # The monotonic time the wait ends, which also bounds each poll (None: never).
        self.end = deadline_after(timeout)

    def next_poll(self) -> float:
        """Seconds to sleep before asking for the job again; DeadlineExceededError when the next
        answer would come after the deadline."""
        if outlasts(POLL_INTERVAL_S, self.end):
            raise self.exceeded()
        return POLL_INTERVAL_S

    def exceeded(self) -> DeadlineExceededError:
        """The error `wait` raises when the job did not finish in time."""
        within = "in time" if self.timeout is None else f"within {self.timeout:g} s"
        return DeadlineExceededError(
            f"job {self.job_id} did not finish {within}; it continues in the background "
            f"(check it with `ragline job {self.job_id}`)",
            code="DEADLINE_EXCEEDED",
        )


def _stage(stage: Stage | str | job_pb2.Stage.ValueType) -> job_pb2.Stage.ValueType:
    # An int is a stage already checked by checked_stage (the dead-letter iterators check first).
    return stage if isinstance(stage, int) else stage_to_proto(stage)


def _ids(ids: Sequence[str]) -> list[str]:
    # A lone str is a Sequence[str] too: sending its characters as ids would be a silent mistake.
    if isinstance(ids, str):
        raise TypeError("ids must be a sequence of dead-letter ids, not a single str")
    return list(ids)


def _job(response: pb.IngestResponse | pb.GetJobResponse | pb.CancelJobResponse) -> Job:
    return job_from_proto(response.job)


def _jobs(response: pb.IngestBatchResponse) -> list[Job]:
    return [job_from_proto(job) for job in response.jobs]


def _hits(response: pb.SearchResponse) -> list[Hit]:
    return [hit_from_proto(hit) for hit in response.hits]


def _deleted(response: pb.DeleteDocumentResponse) -> int:
    return response.chunks_deleted


def _requeued(response: pb.RequeueDeadLettersResponse) -> int:
    return response.requeued


def _purged(response: pb.PurgeDeadLettersResponse) -> int:
    return response.purged
