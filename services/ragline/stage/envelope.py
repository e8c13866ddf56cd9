"""Encoding and decoding of the task envelopes that travel on the stage queues, and the builders
of each stage's next task: one place that knows what every task carries on from the last."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError

from ragline.errors import PermanentTaskError
from ragline.ids import new_id
from ragline.jobs.model import Stage
from ragline.v1 import queue_pb2


def queue_name(stage: Stage) -> str:
    """The queue a stage consumes: "chunk", "embed" or "index"."""
    return stage.value


def new_envelope(
    job_id: str, attempt: int = 1, trace_context: Mapping[str, str] | None = None
) -> queue_pb2.TaskEnvelope:
    """A new task's envelope; `trace_context` is the publishing span's (empty: tracing off)."""
    env = queue_pb2.TaskEnvelope(message_id=new_id(), job_id=job_id, attempt=attempt)
    env.enqueue_time.FromNanoseconds(time.time_ns())
    if trace_context:
        env.trace_context.update(trace_context)
    return env


def document_of(env: queue_pb2.TaskEnvelope) -> queue_pb2.DocumentRef:
    """The document a task is about, whichever its kind."""
    kind = env.WhichOneof("task")
    if kind == "chunk":
        return env.chunk.document
    if kind == "embed":
        return env.embed.document
    if kind == "index":
        return env.index.document
    return queue_pb2.DocumentRef()


def chunk_task(
    job_id: str,
    document: queue_pb2.DocumentRef,
    *,
    content: bytes = b"",
    content_type: str,
    chunk_size: int,
    chunk_overlap: int,
    embedding_model: str,
    trace_context: Mapping[str, str] | None = None,
) -> bytes:
    """The gateway's task for the chunker: a whole document (its version may be left for the
    job store's create script to add; see with_document_version).

    Without `content`, the task refers to the document's bytes, which the job store keeps
    beside the job (ChunkTask.content_in_store): the queue entry stays small, and the task can
    be published again from the store should the broker lose it."""
    env = new_envelope(job_id, trace_context=trace_context)
    env.chunk.CopyFrom(
        queue_pb2.ChunkTask(
            document=document,
            content=content,
            content_in_store=not content,
            content_type=content_type,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            embedding_model=embedding_model,
        )
    )
    return env.SerializeToString()


def embed_task(
    chunked: queue_pb2.TaskEnvelope,
    chunks: Iterable[queue_pb2.TextChunk],
    trace_context: Mapping[str, str] | None = None,
) -> bytes:
    """The chunker's task for the embedder, for some of a chunk task's chunks: the same job,
    attempt, document and model; `trace_context` is the chunker's span for the task."""
    env = new_envelope(chunked.job_id, max(1, chunked.attempt), trace_context)
    env.embed.document.CopyFrom(chunked.chunk.document)
    env.embed.embedding_model = chunked.chunk.embedding_model
    env.embed.chunks.extend(chunks)
    return env.SerializeToString()


def index_task(
    embedded: queue_pb2.TaskEnvelope,
    vectors: npt.ArrayLike,
    trace_context: Mapping[str, str] | None = None,
) -> bytes:
    """The embedder's task for the indexer: an embed task's chunks with their vectors (one row
    per chunk, in the chunks' order; float32, as the encoder returns them); `trace_context` is
    the embedder's span for the task."""
    embed = embedded.embed
    rows = np.asarray(vectors, dtype="<f4")
    if len(rows) != len(embed.chunks) or (len(rows) and rows.ndim != 2):
        raise ValueError(
            f"{len(embed.chunks)} chunks need as many vectors, one row each; got shape {rows.shape}"
        )
    env = new_envelope(embedded.job_id, max(1, embedded.attempt), trace_context)
    env.index.document.CopyFrom(embed.document)
    env.index.embedding_model = embed.embedding_model
    chunks = env.index.chunks
    # Each vector goes in as its packed field's bytes, parsed in C: no Python float per value
    # (tolist() and then the field's conversion back to float32 cost ~17 us a chunk).
    head = _EMBEDDED_VECTOR_KEY + _varint(4 * rows.shape[1]) if len(rows) else b""
    for c, row in zip(embed.chunks, rows, strict=True):
        chunk = chunks.add(chunk_index=c.chunk_index, text=c.text)
        chunk.MergeFromString(head + row.tobytes())
    return env.SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# EmbeddedChunk.vector's key as a packed (length-delimited) repeated float.
_EMBEDDED_VECTOR_KEY = _varint(
    queue_pb2.EmbeddedChunk.DESCRIPTOR.fields_by_name["vector"].number << 3 | 2
)


def _tag(field: FieldDescriptor) -> bytes:
    wire_type = 2 if field.message_type is not None else 0  # length-delimited, or varint
    return _varint(field.number << 3 | wire_type)


# The keys of TaskEnvelope.chunk, ChunkTask.document and DocumentRef.document_version, outermost
# first: what with_document_version (and the job store's create script, given these) writes.
DOCUMENT_VERSION_TAGS: tuple[bytes, bytes, bytes] = (
    _tag(queue_pb2.TaskEnvelope.DESCRIPTOR.fields_by_name["chunk"]),
    _tag(queue_pb2.ChunkTask.DESCRIPTOR.fields_by_name["document"]),
    _tag(queue_pb2.DocumentRef.DESCRIPTOR.fields_by_name["document_version"]),
)


def with_document_version(body: bytes, version: int) -> bytes:
    """A serialized chunk-task envelope with its document version set to `version`.

    The version is given inside the Redis script that records the job, after the body was built;
    protobuf parses concatenated messages as one merged message, so appending an envelope that
    holds only chunk.document.document_version sets it without parsing the body again. The job
    store's script does the same in Lua, from DOCUMENT_VERSION_TAGS.
    """
    outer, middle, inner = DOCUMENT_VERSION_TAGS
    ref = inner + _varint(version)
    task = middle + _varint(len(ref)) + ref
    return body + outer + _varint(len(task)) + task


def decode(body: bytes) -> queue_pb2.TaskEnvelope:
    """The envelope in `body`; PermanentTaskError when it is not one (it never will be)."""
    env = queue_pb2.TaskEnvelope()
    try:
        env.ParseFromString(body)
    except DecodeError as exc:
        raise PermanentTaskError(f"the message is not a ragline task envelope: {exc}") from exc
    if not env.job_id or env.WhichOneof("task") is None:
        raise PermanentTaskError("the message has no job id or no task")
    return env


def next_attempt(env: queue_pb2.TaskEnvelope) -> bytes:
    """The same task, published again as its next attempt."""
    again = queue_pb2.TaskEnvelope()
    again.CopyFrom(env)
    again.message_id = new_id()
    again.attempt = max(1, env.attempt) + 1
    again.enqueue_time.FromNanoseconds(time.time_ns())
    if not again.HasField("first_failure_time"):
        again.first_failure_time.FromNanoseconds(time.time_ns())
    return again.SerializeToString()


def fresh_start(body: bytes) -> bytes:
    """A dead-lettered task made new again: attempt 1, no failure history, a new message id.

    Bodies that are not envelopes pass through unchanged (they will be dead-lettered again).
    """
    try:
        env = decode(body)
    except PermanentTaskError:
        return body
    env.message_id = new_id()
    env.attempt = 1
    env.ClearField("first_failure_time")
    env.enqueue_time.FromNanoseconds(time.time_ns())
    return env.SerializeToString()
