"""RaglineClient: a small synchronous facade over the generated IngestService stubs.

It only sends: the calls are built and read in ragline_client._calls, the connection settings and
retry decisions come from _connection and _retry, shared with AsyncRaglineClient.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Self, TypeVar

import grpc

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

__all__ = ["DEFAULT_GATEWAY", "RaglineClient"]

T = TypeVar("T")


class RaglineClient:
    """A connection to a ragline gateway.

    Every method raises a `RaglineClientError` subclass when the call fails. Use it as a context
    manager, or call `close()` when done::

        with RaglineClient("127.0.0.1:50051") as client:
            job = client.ingest("Hello.", document_id="hello")
            client.wait(job.job_id, timeout=60)
            hits = client.search("greeting")

    TLS: give ``ca_file`` (the PEM certificate of the CA that signed the gateway's certificate)
    to connect over TLS; add ``cert_file`` and ``key_file`` (a PEM client certificate and its key)
    when the gateway requires mutual TLS::

        RaglineClient(
            "gw.example.com:50051", ca_file="ca.pem", cert_file="me.pem", key_file="me-key.pem"
        )

    The gateway's certificate must name the host in `address`. The files are read once, here:
    OSError when one cannot be read, ValueError when it holds no PEM block.

    Args:
        address: the gateway's ``host:port``.
        api_key: the gateway's API key (``rl_...``), sent with every call, streams included, as
            ``authorization: Bearer <api_key>``; None sends none (a gateway without auth).
            It never appears in an error message or a repr.
        ca_file: PEM CA certificate(s) to verify the gateway with; turns TLS on. Without it,
            `cert_file` and `key_file` turn TLS on trusting the system's CAs.
        cert_file: PEM client certificate (chain) for mutual TLS; needs `key_file`.
        key_file: the client certificate's unencrypted PEM private key.
        credentials: ready-made channel credentials instead of the files, e.g.
            ``grpc.ssl_channel_credentials()`` for a gateway whose certificate the system trusts.
            None and no files open a plaintext channel.
        metadata: ``(key, value)`` pairs sent with every call.
        timeout: seconds each unary call (each attempt of it) may take; None waits forever.
        retry: which failures are tried again, and how long to wait first; None is the default
            RetryPolicy (UNAVAILABLE, and RESOURCE_EXHAUSTED after the delay the gateway asks
            for, up to 5 attempts over about 3 s). ``RetryPolicy(maximum_attempts=1)`` turns retries
            off.
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
            self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(
                address, self._connection.credentials, options=CHANNEL_OPTIONS
            )
        self._stub = pb_grpc.IngestServiceStub(self._channel)

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return self._connection.metadata

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def ingest(
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
        """Queues one document and returns its job at once, normally in state accepted.

        Ingesting an existing `document_id` again replaces that document. A retried call with the
        same `request_id` returns the first call's job instead of making another.
        """
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
        return self._unary(calls.ingest(doc))

    def ingest_file(
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
        """Queues the file at `path`; see `Document.from_file` for the defaults it fills in."""
        doc = Document.from_file(
            path,
            document_id=document_id,
            content_type=content_type,
            metadata=metadata,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            embedding_model=embedding_model,
            request_id=request_id,
        )
        return self._unary(calls.ingest(doc))

    def ingest_batch(self, documents: Sequence[Document]) -> list[Job]:
        """Queues many documents in one call and returns their jobs in the same order.

        The gateway validates the batch whole: if one document is invalid, none is queued. One call
        carries at most 80 MiB and the gateway's batch limit (1000 documents by default).
        """
        return self._unary(calls.ingest_batch(documents))

    def ingest_many(self, documents: Sequence[Document]) -> list[Job]:
        """Queues any number of documents, in as many IngestBatch calls as their count and size
        need (64 documents or 32 MiB each), and returns their jobs in the same order.

        Each call is validated whole; when one fails, the calls before it stay queued and their
        jobs go on.
        """
        return [
            job for batch in calls.ingest_batches(documents) for job in self.ingest_batch(batch)
        ]

    def get_job(self, job_id: str) -> Job:
        """The job's current state and progress. NotFoundError for an unknown job id."""
        return self._unary(calls.get_job(job_id))

    def watch(self, job_id: str, *, timeout: float | None = None) -> Iterator[Job]:
        """Yields the job each time it changes, starting with its current state; ends after a
        terminal state. `timeout` bounds the whole stream (DeadlineExceededError). Opening the
        stream is retried as a unary call is; a stream that fails later raises."""
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
                for response in stream:
                    received = True
                    yield calls.watched_job(response)
                return
            except grpc.RpcError as exc:
                error = self._connection.error(exc)
                delay = None if received else attempts.after(error)
                if delay is None:
                    raise error from exc
            finally:
                stream.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped
            time.sleep(delay)
            timeout = calls.time_left(deadline)  # a reopened stream gets what is left

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Blocks until the job is completed, failed or cancelled, and returns it.

        Raises DeadlineExceededError (also a TimeoutError) when `timeout` seconds pass first.
        """
        deadline = calls.WaitDeadline(job_id, timeout)
        try:
            for job in self.watch(job_id, timeout=timeout):
                if job.state.is_terminal:
                    return job
        except DeadlineExceededError as exc:
            raise deadline.exceeded() from exc
        except RaglineClientError as exc:
            if exc.code != "UNIMPLEMENTED":
                raise
        # The stream ended early or the gateway cannot stream: poll instead, each call bounded
        # by what is left of the wait.
        while True:
            try:
                job = self._unary(calls.get_job(job_id), deadline=deadline.end)
            except DeadlineExceededError as exc:
                raise deadline.exceeded() from exc
            if job.state.is_terminal:
                return job
            time.sleep(deadline.next_poll())

    def search(self, query: str, *, top_k: int = 10, document_ids: Sequence[str] = ()) -> list[Hit]:
        """The `top_k` chunks closest to `query`, best first, optionally only from `document_ids`."""
        return self._unary(calls.search(query, top_k, document_ids))

    def get_document(self, document_id: str) -> DocumentInfo:
        """Which version of the document is searchable and how many chunks it has."""
        return self._unary(calls.get_document(document_id))

    def delete(self, document_id: str) -> int:
        """Removes every chunk of the document from the index; returns how many were removed."""
        return self._unary(calls.delete(document_id))

    def cancel(self, job_id: str) -> Job:
        """Stops all further work on the job and removes the vectors it already wrote; returns the
        job, normally in state cancelled.

        Cancelling a cancelled job returns it unchanged. NotFoundError for an unknown job id;
        FailedPreconditionError for a job that already completed.
        """
        return self._unary(calls.cancel(job_id))

    def list_dead_letters(
        self, stage: Stage | str, *, page_size: int = 100, page_token: str = ""
    ) -> DeadLetterPage:
        """One page of the stage's dead-letter queue, oldest first.

        `stage` is "chunk", "embed" or "index" (ValueError otherwise); `page_size` is 1 to 1000.
        Pass the page's `next_page_token` as `page_token` for the next page; it is empty on the last.
        """
        return self._unary(calls.list_dead_letters(stage, page_size, page_token))

    def iter_dead_letters(
        self, stage: Stage | str, *, page_size: int = 100
    ) -> Iterator[DeadLetter]:
        """Every dead letter in the stage's queue, oldest first, fetching `page_size` at a time.

        A bad `stage` raises ValueError here, not at the first ``next()``.
        """
        return self._follow_pages(calls.checked_stage(stage), page_size)

    def requeue_dead_letters(self, stage: Stage | str, ids: Sequence[str] = ()) -> int:
        """Puts dead letters back on the stage's queue with a fresh attempt count and reopens their
        jobs; returns how many were requeued. No `ids` requeues the whole dead-letter queue."""
        return self._unary(calls.requeue_dead_letters(stage, ids))

    def purge_dead_letters(self, stage: Stage | str, ids: Sequence[str] = ()) -> int:
        """Deletes dead letters for good (their jobs stay failed); returns how many were deleted.
        No `ids` empties the stage's dead-letter queue."""
        return self._unary(calls.purge_dead_letters(stage, ids))

    def _follow_pages(self, stage: job_pb2.Stage.ValueType, page_size: int) -> Iterator[DeadLetter]:
        token = ""
        while True:
            page = self._unary(calls.list_dead_letters(stage, page_size, token))
            yield from page.dead_letters
            if not page.next_page_token:
                return
            token = page.next_page_token

    def _unary(self, call: calls.Unary[T], *, deadline: float | None = None) -> T:
        """Sends `call`, retrying as the connection's policy says, and reads its answer; a
        `deadline` (monotonic) bounds each attempt and the waits between them."""
        method = getattr(self._stub, call.method)
        attempts = self._connection.retry.attempts()
        while True:
            try:
                response = method(
                    call.request,
                    timeout=calls.bounded_timeout(self._connection.timeout, deadline),
                    metadata=self._connection.metadata,
                )
            except grpc.RpcError as exc:
                error = self._connection.error(exc)
                delay = attempts.after(error)
                if delay is None or calls.outlasts(delay, deadline):
                    raise error from exc
                time.sleep(delay)
            else:
                return call.read(response)
