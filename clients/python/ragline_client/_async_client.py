"""AsyncRaglineClient: RaglineClient for asyncio, on grpc.aio.

The same calls, options, retries and errors as RaglineClient: both build and read their calls in
ragline_client._calls and take their settings and retry decisions from _connection and _retry;
this module only sends them without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Self, TypeVar

import grpc
from grpc import aio

from ragline_client import _calls as calls
from ragline_client._connection import CHANNEL_OPTIONS, DEFAULT_GATEWAY, connection
from ragline_client._errors import DeadlineExceededError, RaglineClientError
from ragline_client._retry import RetryPolicy
from ragline_client._types import (
    DeadLetter,
    DeadLetterPage,
    Document,
    DocumentInfo,
    Hit,
    Job,
    Metadata,
    Stage,
)
from ragline_client.v1 import ingest_service_pb2_grpc as pb_grpc
from ragline_client.v1 import job_pb2

__all__ = ["AsyncRaglineClient"]

T = TypeVar("T")


class AsyncRaglineClient:
    """A connection to a ragline gateway for asyncio code; RaglineClient's twin, call for call::

        async with AsyncRaglineClient("127.0.0.1:50051", api_key=key) as client:
            job = await client.ingest("Hello.", document_id="hello")
            async for update in client.watch(job.job_id):
                print(update.state)
            hits = await client.search("greeting")

    The arguments are RaglineClient's (address, api_key, ca_file/cert_file/key_file or
    credentials, metadata, timeout, retry), with the same meaning; so are each method's arguments,
    results and errors, except that they are awaited and that `watch` and `iter_dead_letters` are
    async iterators. Create it inside the event loop that uses it; `await close()` when done.
    """

    def __init__(
        self,
        address: str = DEFAULT_GATEWAY,
        *,
        api_key: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        cert_file: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._connection = connection(
            address,
            api_key=api_key,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            credentials=credentials,
            metadata=metadata,
            timeout=timeout,
            retry=retry,
        )
        self.address = address
        if self._connection.credentials is None:
            self._channel = aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        else:
            self._channel = aio.secure_channel(
                address, self._connection.credentials, options=CHANNEL_OPTIONS
            )
        self._stub = pb_grpc.IngestServiceStub(self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close(grace=None)

    async def ingest(
        self,
        content: bytes | str,
        *,
        document_id: str,
        content_type: str = "text/plain",
        metadata: Metadata | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        embedding_model: str = "",
        request_id: str = "",
    ) -> Job:
        """Queues one document and returns its job at once; see RaglineClient.ingest."""
        doc = Document(
            content=content,
            document_id=document_id,
            content_type=content_type,
            metadata=metadata,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            embedding_model=embedding_model,
            request_id=request_id,
        )
        return await self._unary(calls.ingest(doc))

    async def ingest_file(
        self,
        path: str | os.PathLike[str],
        *,
        document_id: str | None = None,
        content_type: str | None = None,
        metadata: Metadata | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        embedding_model: str = "",
        request_id: str = "",
    ) -> Job:
        """Queues the file at `path`; see `Document.from_file` for the defaults it fills in. The
        file is read in a worker thread."""
        doc = await asyncio.to_thread(
            Document.from_file,
            path,
            document_id=document_id,
            content_type=content_type,
            metadata=metadata,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            embedding_model=embedding_model,
            request_id=request_id,
        )
        return await self._unary(calls.ingest(doc))

    async def ingest_batch(self, documents: Sequence[Document]) -> list[Job]:
        """Queues many documents in one call, validated whole; see RaglineClient.ingest_batch."""
        return await self._unary(calls.ingest_batch(documents))

    async def ingest_many(self, documents: Sequence[Document]) -> list[Job]:
        """Queues any number of documents in as many batches as they need, one after another;
        see RaglineClient.ingest_many."""
        jobs: list[Job] = []
        for batch in calls.ingest_batches(documents):
            jobs.extend(await self.ingest_batch(batch))
        return jobs

    async def get_job(self, job_id: str) -> Job:
        """The job's current state and progress. NotFoundError for an unknown job id."""
        return await self._unary(calls.get_job(job_id))

    # `timeout` is the stream's gRPC deadline, which the gateway sees too, as in RaglineClient.
    async def watch(
        self,
        job_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncIterator[Job]:
        """Yields the job each time it changes, starting with its current state, until a terminal
        state; see RaglineClient.watch."""
        attempts = self._connection.retry.attempts()
        deadline = calls.deadline_after(timeout)
        while True:
            stream = self._stub.WatchJob(
                calls.watch_request(job_id),
                timeout=timeout,
                metadata=self._connection.metadata,
            )
            received = False
            delay: float | None = None
            try:
                async for response in stream:
                    received = True
                    yield calls.watched_job(response)
                return
            except grpc.RpcError as exc:
                error = self._connection.error(exc)
                delay = None if received else attempts.after(error)
                if delay is None:
                    raise error from exc
            finally:
                stream.cancel()
            await asyncio.sleep(delay)
            timeout = calls.time_left(deadline)  # a reopened stream gets what is left

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:  # noqa: ASYNC109
        """Returns the job once it is completed, failed or cancelled; DeadlineExceededError (also
        a TimeoutError) when `timeout` seconds pass first."""
        deadline = calls.WaitDeadline(job_id, timeout)
        try:
            async for job in self.watch(job_id, timeout=timeout):
                if job.state.is_terminal:
                    return job
        except DeadlineExceededError as exc:
            raise deadline.exceeded() from exc
        except RaglineClientError as exc:
            if exc.code != "UNIMPLEMENTED":
                raise
        # The stream ended early or the gateway cannot stream: poll the gateway instead (nothing
        # in this process could set an Event), each call bounded by what is left of the wait.
        while True:
            try:
                job = await self._unary(calls.get_job(job_id), deadline=deadline.end)
            except DeadlineExceededError as exc:
                raise deadline.exceeded() from exc
            if job.state.is_terminal:
                return job
            await asyncio.sleep(deadline.next_poll())

    async def search(
        self, query: str, *, top_k: int = 10, document_ids: Sequence[str] = ()
    ) -> list[Hit]:
        """The `top_k` chunks closest to `query`, best first, optionally only from `document_ids`."""
        return await self._unary(calls.search(query, top_k, document_ids))

    async def get_document(self, document_id: str) -> DocumentInfo:
        """Which version of the document is searchable and how many chunks it has."""
        return await self._unary(calls.get_document(document_id))

    async def delete(self, document_id: str) -> int:
        """Removes every chunk of the document from the index; returns how many were removed."""
        return await self._unary(calls.delete(document_id))

    async def cancel(self, job_id: str) -> Job:
        """Stops all further work on the job and removes its vectors; see RaglineClient.cancel."""
        return await self._unary(calls.cancel(job_id))

    async def list_dead_letters(
        self, stage: Stage | str, *, page_size: int = 100, page_token: str = ""
    ) -> DeadLetterPage:
        """One page of the stage's dead-letter queue; see RaglineClient.list_dead_letters."""
        return await self._unary(calls.list_dead_letters(stage, page_size, page_token))

    def iter_dead_letters(
        self, stage: Stage | str, *, page_size: int = 100
    ) -> AsyncIterator[DeadLetter]:
        """Every dead letter in the stage's queue, oldest first (``async for``); a bad `stage`
        raises ValueError here, before any call."""
        return self._follow_pages(calls.checked_stage(stage), page_size)

    async def requeue_dead_letters(self, stage: Stage | str, ids: Sequence[str] = ()) -> int:
        """Puts dead letters back on the stage's queue; see RaglineClient.requeue_dead_letters."""
        return await self._unary(calls.requeue_dead_letters(stage, ids))

    async def purge_dead_letters(self, stage: Stage | str, ids: Sequence[str] = ()) -> int:
        """Deletes dead letters for good; see RaglineClient.purge_dead_letters."""
        return await self._unary(calls.purge_dead_letters(stage, ids))

    async def _follow_pages(
        self, stage: job_pb2.Stage.ValueType, page_size: int
    ) -> AsyncIterator[DeadLetter]:
        token = ""
        while True:
            page = await self._unary(calls.list_dead_letters(stage, page_size, token))
            for letter in page.dead_letters:
                yield letter
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def _unary(self, call: calls.Unary[T], *, deadline: float | None = None) -> T:
        """Sends `call`, retrying as the connection's policy says, and reads its answer; a
        `deadline` (monotonic) bounds each attempt and the waits between them."""
        method = getattr(self._stub, call.method)
        attempts = self._connection.retry.attempts()
        while True:
            try:
                response = await method(
                    call.request,
                    timeout=calls.bounded_timeout(self._connection.timeout, deadline),
                    metadata=self._connection.metadata,
                )
            except grpc.RpcError as exc:
                error = self._connection.error(exc)
                delay = attempts.after(error)
                if delay is None or calls.outlasts(delay, deadline):
                    raise error from exc
                await asyncio.sleep(delay)
            else:
                return call.read(response)
