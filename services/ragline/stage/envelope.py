"""Encoding and decoding of the task envelopes that travel on the stage queues."""

from __future__ import annotations

import time

from google.protobuf.message import DecodeError

from ragline.errors import PermanentTaskError
from ragline.ids import new_id
from ragline.jobs.model import Stage
from ragline.v1 import queue_pb2


def queue_name(stage: Stage) -> str:
    """The queue a stage consumes: "chunk", "embed" or "index"."""
    return stage.value


def new_envelope(job_id: str, attempt: int = 1) -> queue_pb2.TaskEnvelope:
    env = queue_pb2.TaskEnvelope(message_id=new_id(), job_id=job_id, attempt=attempt)
    env.enqueue_time.FromNanoseconds(time.time_ns())
    return env


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
