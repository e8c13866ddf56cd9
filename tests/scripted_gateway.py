"""A tiny real IngestService on grpc.aio, in the test's own process, that answers as a test
scripts it: the client unit tests send real gRPC calls to it, from both Python clients."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import ingest_service_pb2_grpc as pb_grpc
from ragline_client.v1 import job_pb2

ACCEPTED = job_pb2.JOB_STATE_ACCEPTED
ACTIVE = job_pb2.JOB_STATE_ACTIVE
COMPLETED = job_pb2.JOB_STATE_COMPLETED
FAILED = job_pb2.JOB_STATE_FAILED


@dataclass
class Failure:
    """A status to answer with: its code, message and google.rpc details."""

    code: grpc.StatusCode
    message: str
    details: list[Message] = field(default_factory=list)


@dataclass
class ScriptedGateway(pb_grpc.IngestServiceServicer):
    """Fails each call with the next of `failures`, then answers: GetJob with the next of
    `job_states` (the last one again once they run out), WatchJob by streaming `watch_states` and
    then failing with `watch_ends_with` if set, ListDeadLetters with the next of `pages`,
    IngestBatch with an accepted job per document. Notes
    when each call arrived, which method it was, with which request, metadata and deadline."""

    address: str = ""
    failures: list[Failure] = field(default_factory=list)
    job_states: list[job_pb2.JobState.ValueType] = field(default_factory=lambda: [ACTIVE])
    watch_states: list[job_pb2.JobState.ValueType] = field(
        default_factory=lambda: [ACTIVE, COMPLETED]
    )
    watch_ends_with: Failure | None = None
    pages: list[pb.ListDeadLettersResponse] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    requests: list[Message] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    time_left: list[float | None] = field(default_factory=list)
    server: aio.Server | None = None

    async def stop(self) -> None:
        """Stops serving at once, as a crashed gateway does."""
        assert self.server is not None
        await self.server.stop(grace=None)

    def gaps(self) -> list[float]:
        """Seconds between one call's arrival and the next's."""
        return [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]

    async def GetJob(
        self, request: pb.GetJobRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetJobResponse:
        await self._arrive("GetJob", request, context)
        state = self.job_states.pop(0) if len(self.job_states) > 1 else self.job_states[0]
        return pb.GetJobResponse(job=job(request.job_id, state))

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchJobResponse]:
        await self._arrive("WatchJob", request, context)
        for state in self.watch_states:
            yield pb.WatchJobResponse(job=job(request.job_id, state))
        if self.watch_ends_with is not None:
            await _abort(context, self.watch_ends_with)

    async def IngestBatch(
        self, request: pb.IngestBatchRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.IngestBatchResponse:
        await self._arrive("IngestBatch", request, context)
        jobs = [
            job_pb2.Job(job_id=f"job-{d.document_id}", document_id=d.document_id, state=ACCEPTED)
            for d in request.documents
        ]
        return pb.IngestBatchResponse(jobs=jobs)

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListDeadLettersResponse:
        await self._arrive("ListDeadLetters", request, context)
        return self.pages.pop(0)

    async def _arrive(
        self, method: str, request: Message, context: aio.ServicerContext[Any, Any]
    ) -> None:
        self.arrivals.append(time.monotonic())
        self.methods.append(method)
        self.requests.append(request)
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        self.time_left.append(context.time_remaining())
        if self.failures:
            await _abort(context, self.failures.pop(0))


def job(job_id: str, state: job_pb2.JobState.ValueType) -> job_pb2.Job:
    return job_pb2.Job(job_id=job_id, document_id="d", document_version=1, state=state)


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(seconds * 1e9))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def bad_request(field_path: str, description: str) -> error_details_pb2.BadRequest:
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=field_path, description=description
    )
    return error_details_pb2.BadRequest(field_violations=[violation])


@asynccontextmanager
async def scripted_gateway(address: str = "127.0.0.1:0") -> AsyncIterator[ScriptedGateway]:
    """A ScriptedGateway serving on `address` (a free local port by default; its `address`)
    until the block ends."""
    gateway = ScriptedGateway()
    server = aio.server()
    pb_grpc.add_IngestServiceServicer_to_server(gateway, server)
    host = address.rsplit(":", 1)[0]
    gateway.address = f"{host}:{server.add_insecure_port(address)}"
    await server.start()
    gateway.server = server
    try:
        yield gateway
    finally:
        await server.stop(grace=None)


async def _abort(context: aio.ServicerContext[Any, Any], failure: Failure) -> None:
    packed = []
    for detail in failure.details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    status = rpc_status.to_status(
        status_pb2.Status(code=failure.code.value[0], message=failure.message, details=packed)
    )
    await context.abort(status.code, status.details, status.trailing_metadata)
