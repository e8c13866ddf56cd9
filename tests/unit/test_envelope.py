"""Task envelopes: garbage is a permanent error; a retry is the same task with attempt + 1."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ragline.errors import PermanentTaskError
from ragline.jobs.model import Stage
from ragline.stage.envelope import (
    chunk_task,
    decode,
    embed_task,
    index_task,
    new_envelope,
    next_attempt,
    queue_name,
    with_document_version,
)
from ragline.v1 import queue_pb2

pytestmark = pytest.mark.unit


def chunk_envelope(attempt: int = 1) -> queue_pb2.TaskEnvelope:
    env = new_envelope("job-123", attempt=attempt)
    env.chunk.CopyFrom(
        queue_pb2.ChunkTask(
            document=queue_pb2.DocumentRef(document_id="doc", document_version=3),
            content=b"hello",
            content_type="text/plain",
            chunk_size=100,
            chunk_overlap=10,
        )
    )
    return env


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",
        b"not a protobuf at all, just text\x00\x01",
        b"\x0a\x05ab",  # a length-delimited field cut short
        b"\x12",  # a truncated tag
    ],
    ids=["0xff", "text", "truncated-field", "truncated-tag"],
)
def test_garbage_is_a_permanent_error(body: bytes) -> None:
    with pytest.raises(PermanentTaskError):
        decode(body)


def test_an_empty_message_is_permanent() -> None:
    with pytest.raises(PermanentTaskError, match="no job id or no task"):
        decode(b"")


def test_an_envelope_without_a_task_is_permanent() -> None:
    with pytest.raises(PermanentTaskError, match="no task"):
        decode(new_envelope("job-1").SerializeToString())


def test_an_envelope_without_a_job_id_is_permanent() -> None:
    env = chunk_envelope()
    env.job_id = ""
    with pytest.raises(PermanentTaskError, match="no job id"):
        decode(env.SerializeToString())


def test_round_trip() -> None:
    env = chunk_envelope()
    got = decode(env.SerializeToString())
    assert got == env
    assert got.WhichOneof("task") == "chunk"


def test_new_envelope() -> None:
    before = time.time_ns()
    a, b = new_envelope("j"), new_envelope("j")
    assert a.job_id == "j"
    assert a.attempt == 1
    assert a.message_id and b.message_id and a.message_id != b.message_id
    assert before <= a.enqueue_time.ToNanoseconds() <= time.time_ns()


def test_next_attempt_is_the_same_task_one_attempt_later() -> None:
    env = chunk_envelope()
    again = decode(next_attempt(env))
    assert again.attempt == 2
    assert again.message_id != env.message_id
    assert len(again.message_id) == len(env.message_id)
    assert again.job_id == env.job_id
    assert again.chunk == env.chunk
    assert again.enqueue_time.ToNanoseconds() >= env.enqueue_time.ToNanoseconds()
    # The original is left alone.
    assert env.attempt == 1

    third = decode(next_attempt(again))
    assert third.attempt == 3
    assert third.message_id not in (env.message_id, again.message_id)
    assert third.chunk == env.chunk


def test_next_attempt_of_an_unset_attempt_is_two() -> None:
    env = chunk_envelope()
    env.attempt = 0
    assert decode(next_attempt(env)).attempt == 2


def test_next_attempt_keeps_embed_and_index_tasks() -> None:
    env = new_envelope("job-e", attempt=4)
    env.embed.chunks.add(chunk_index=7, text="seven", token_count=2)
    again = decode(next_attempt(env))
    assert again.attempt == 5
    assert again.WhichOneof("task") == "embed"
    assert [c.chunk_index for c in again.embed.chunks] == [7]


def test_queue_names() -> None:
    assert [queue_name(s) for s in Stage] == ["chunk", "embed", "index"]


@pytest.mark.parametrize("version", [1, 127, 128, 300, 2**40])
def test_with_document_version_sets_the_version_and_keeps_the_rest(version: int) -> None:
    env = chunk_envelope()
    env.chunk.document.ClearField("document_version")
    env.chunk.document.metadata.uploaded_by = "someone"
    patched = decode(with_document_version(env.SerializeToString(), version))
    assert patched.chunk.document.document_version == version
    patched.chunk.document.ClearField("document_version")
    assert patched == env


def test_each_stage_hands_its_job_document_and_model_on_to_the_next() -> None:
    ref = queue_pb2.DocumentRef(document_id="doc", document_version=4)
    ref.metadata.original_filename = "handbook.pdf"
    chunked = decode(
        chunk_task(
            "job-1",
            ref,
            content=b"text",
            content_type="text/plain",
            chunk_size=64,
            chunk_overlap=8,
            embedding_model="m",
        )
    )
    assert (chunked.job_id, chunked.attempt, chunked.chunk.content) == ("job-1", 1, b"text")
    assert (chunked.chunk.chunk_size, chunked.chunk.chunk_overlap) == (64, 8)
    chunked.attempt = 3  # a retried cut: its tasks carry the attempt on
    chunks = [queue_pb2.TextChunk(chunk_index=i, text=f"c{i}", token_count=2) for i in (5, 6)]
    embedded = decode(embed_task(chunked, chunks))
    assert (embedded.job_id, embedded.attempt, embedded.embed.embedding_model) == ("job-1", 3, "m")
    assert embedded.embed.document == ref
    assert list(embedded.embed.chunks) == chunks
    assert embedded.message_id != chunked.message_id
    indexed = decode(index_task(embedded, [[0.5, 0.25], [1.0, 0.0]]))
    assert (indexed.job_id, indexed.attempt, indexed.index.document) == ("job-1", 3, ref)
    assert [(c.chunk_index, c.text, list(c.vector)) for c in indexed.index.chunks] == [
        (5, "c5", [0.5, 0.25]),
        (6, "c6", [1.0, 0.0]),
    ]
    with pytest.raises(ValueError):  # a vector per chunk, no fewer
        index_task(embedded, [[0.5, 0.25]])


def test_index_task_vectors_are_the_encoders_float32_values_bit_for_bit() -> None:
    embedded = queue_pb2.TaskEnvelope(job_id="job-1", attempt=1)
    embedded.embed.chunks.extend(
        queue_pb2.TextChunk(chunk_index=i, text=f"c{i}", token_count=1) for i in range(3)
    )
    vectors = np.random.default_rng(7).standard_normal((3, 384), dtype=np.float32)
    vectors[1, 5] = np.float32(1e-45)  # a subnormal survives too
    indexed = decode(index_task(embedded, vectors))
    # The same bytes as a message built from Python floats, the way it was built before.
    built = [
        queue_pb2.EmbeddedChunk(chunk_index=i, text=f"c{i}", vector=v)
        for i, v in enumerate(vectors.tolist())
    ]
    assert list(indexed.index.chunks) == built
    assert np.array_equal(np.asarray(indexed.index.chunks[1].vector, dtype=np.float32), vectors[1])
    with pytest.raises(ValueError, match="3 chunks need as many vectors"):
        index_task(embedded, vectors[0])  # one flat row is not three vectors
