"""RaglineClient: a small synchronous facade over the generated IngestService stubs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

import grpc

from ragline_client._convert import (
    dead_letter_page_from_proto,
    document_info_from_proto,
    document_to_proto,
    hit_from_proto,
    job_from_proto,
    stage_to_proto,
)
from ragline_client._errors import DeadlineExceededError, RaglineClientError, from_rpc_error
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
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import ingest_service_pb2_grpc as pb_grpc
from ragline_client.v1 import job_pb2

DEFAULT_GATEWAY = "127.0.0.1:50051"

# Documents may be up to 64 MiB; leave room for the rest of the request.
_MAX_MESSAGE_BYTES = 80 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
]
_POLL_INTERVAL_S = 0.5

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


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
        timeout: seconds each unary call may take; None waits forever.
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
    ) -> None:
        self.address = address
        self._metadata = tuple(metadata) + _authorization(api_key, metadata)
        self._timeout = timeout
        if ca_file is not None or cert_file is not None or key_file is not None:
            if credentials is not None:
                raise ValueError("give credentials or ca_file/cert_file/key_file, not both")
            credentials = _tls_credentials(ca_file, cert_file, key_file)
        self._tls = credentials is not None
        if credentials is None:
            self._channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=_CHANNEL_OPTIONS)
        self._stub = pb_grpc.IngestServiceStub(self._channel)

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
        return self._ingest(doc)

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
        return self._ingest(doc)

    def ingest_batch(self, documents: Sequence[Document]) -> list[Job]:
        """Queues many documents in one call and returns their jobs in the same order.

        The gateway validates the batch whole: if one document is invalid, none is queued. One call
        carries at most 80 MiB and the gateway's batch limit (1000 documents by default).
        """
        request = pb.IngestBatchRequest(documents=[document_to_proto(d) for d in documents])
        response = self._unary(self._stub.IngestBatch, request)
        return [job_from_proto(job) for job in response.jobs]

    def get_job(self, job_id: str) -> Job:
        """The job's current state and progress. NotFoundError for an unknown job id."""
        return job_from_proto(self._unary(self._stub.GetJob, pb.GetJobRequest(job_id=job_id)).job)

    def watch(self, job_id: str, *, timeout: float | None = None) -> Iterator[Job]:
        """Yields the job each time it changes, starting with its current state; ends after a
        terminal state. `timeout` bounds the whole stream (DeadlineExceededError)."""
        stream = self._stub.WatchJob(
            pb.WatchJobRequest(job_id=job_id), timeout=timeout, metadata=self._metadata
        )
        try:
            for response in stream:
                yield job_from_proto(response.job)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.address, tls=self._tls) from exc
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Blocks until the job is completed, failed or cancelled, and returns it.

        Raises DeadlineExceededError (also a TimeoutError) when `timeout` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for job in self.watch(job_id, timeout=timeout):
                if job.state.is_terminal:
                    return job
        except DeadlineExceededError as exc:
            raise self._wait_timeout(job_id, timeout) from exc
        except RaglineClientError as exc:
            if exc.code != "UNIMPLEMENTED":
                raise
        # The stream ended early or the gateway cannot stream: poll instead.
        while True:
            job = self.get_job(job_id)
            if job.state.is_terminal:
                return job
            if deadline is not None and time.monotonic() + _POLL_INTERVAL_S > deadline:
                raise self._wait_timeout(job_id, timeout)
            time.sleep(_POLL_INTERVAL_S)

    def search(self, query: str, *, top_k: int = 10, document_ids: Sequence[str] = ()) -> list[Hit]:
        """The `top_k` chunks closest to `query`, best first, optionally only from `document_ids`."""
        request = pb.SearchRequest(query=query, top_k=top_k, document_ids=list(document_ids))
        return [hit_from_proto(hit) for hit in self._unary(self._stub.Search, request).hits]

    def get_document(self, document_id: str) -> DocumentInfo:
        """Which version of the document is searchable and how many chunks it has."""
        request = pb.GetDocumentRequest(document_id=document_id)
        return document_info_from_proto(self._unary(self._stub.GetDocument, request))

    def delete(self, document_id: str) -> int:
        """Removes every chunk of the document from the index; returns how many were removed."""
        request = pb.DeleteDocumentRequest(document_id=document_id)
        return self._unary(self._stub.DeleteDocument, request).chunks_deleted

    def cancel(self, job_id: str) -> Job:
        """Stops all further work on the job and removes the vectors it already wrote; returns the
        job, normally in state cancelled.

        Cancelling a cancelled job returns it unchanged. NotFoundError for an unknown job id;
        FailedPreconditionError for a job that already completed.
        """
        return job_from_proto(
            self._unary(self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id)).job
        )

    def list_dead_letters(
        self, stage: Stage | str, *, page_size: int = 100, page_token: str = ""
    ) -> DeadLetterPage:
        """One page of the stage's dead-letter queue, oldest first.

        `stage` is "chunk", "embed" or "index" (ValueError otherwise); `page_size` is 1 to 1000.
        Pass the page's `next_page_token` as `page_token` for the next page; it is empty on the last.
        """
        request = pb.ListDeadLettersRequest(
            stage=stage_to_proto(stage), page_size=page_size, page_token=page_token
        )
        return dead_letter_page_from_proto(self._unary(self._stub.ListDeadLetters, request))

    def iter_dead_letters(
        self, stage: Stage | str, *, page_size: int = 100
    ) -> Iterator[DeadLetter]:
        """Every dead letter in the stage's queue, oldest first, fetching `page_size` at a time.

        A bad `stage` raises ValueError here, not at the first ``next()``.
        """
        return self._follow_pages(stage_to_proto(stage), page_size)

    def requeue_dead_letters(self, stage: Stage | str, ids: Sequence[str] = ()) -> int:
        """Puts dead letters back on the stage's queue with a fresh attempt count and reopens their
        jobs; returns how many were requeued. No `ids` requeues the whole dead-letter queue."""
        request = pb.RequeueDeadLettersRequest(
            stage=stage_to_proto(stage), dead_letter_ids=_ids(ids)
        )
        return self._unary(self._stub.RequeueDeadLetters, request).requeued

    def purge_dead_letters(self, stage: Stage | str, ids: Sequence[str] = ()) -> int:
        """Deletes dead letters for good (their jobs stay failed); returns how many were deleted.
        No `ids` empties the stage's dead-letter queue."""
        request = pb.PurgeDeadLettersRequest(stage=stage_to_proto(stage), dead_letter_ids=_ids(ids))
        return self._unary(self._stub.PurgeDeadLetters, request).purged

    def _follow_pages(self, stage: job_pb2.Stage.ValueType, page_size: int) -> Iterator[DeadLetter]:
        token = ""
        while True:
            request = pb.ListDeadLettersRequest(stage=stage, page_size=page_size, page_token=token)
            page = dead_letter_page_from_proto(self._unary(self._stub.ListDeadLetters, request))
            yield from page.dead_letters
            if not page.next_page_token:
                return
            token = page.next_page_token

    def _ingest(self, doc: Document) -> Job:
        response = self._unary(self._stub.Ingest, document_to_proto(doc))
        return job_from_proto(response.job)

    def _unary(self, method: grpc.UnaryUnaryMultiCallable[_Req, _Resp], request: _Req) -> _Resp:
        try:
            return method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.address, tls=self._tls) from exc

    def _wait_timeout(self, job_id: str, timeout: float | None) -> DeadlineExceededError:
        within = "in time" if timeout is None else f"within {timeout:g} s"
        return DeadlineExceededError(
            f"job {job_id} did not finish {within}; it continues in the background "
            f"(check it with `ragline job {job_id}`)",
            code="DEADLINE_EXCEEDED",
        )


def _authorization(
    api_key: str | None, metadata: Sequence[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """The metadata entry that carries `api_key`. The errors never quote the key."""
    if api_key is None:
        return ()
    if not isinstance(api_key, str) or not api_key:
        raise TypeError("api_key must be a non-empty str (the key `ragline keys create` printed)")
    if not (api_key.isascii() and api_key.isprintable()) or any(c.isspace() for c in api_key):
        raise ValueError(
            "api_key holds spaces or characters a key never has; pass the key exactly as "
            "`ragline keys create` printed it (not shown here, as it may be a secret)"
        )
    if any(key.lower() == "authorization" for key, _ in metadata):
        raise ValueError("pass the key as api_key or as authorization metadata, not both")
    return (("authorization", f"Bearer {api_key}"),)


def _tls_credentials(
    ca_file: str | os.PathLike[str] | None,
    cert_file: str | os.PathLike[str] | None,
    key_file: str | os.PathLike[str] | None,
) -> grpc.ChannelCredentials:
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together: give both for mutual TLS, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=(
            None if ca_file is None else _read_pem(ca_file, "ca_file", b"CERTIFICATE-----")
        ),
        private_key=None if key_file is None else _read_pem(key_file, "key_file", b"KEY-----"),
        certificate_chain=(
            None if cert_file is None else _read_pem(cert_file, "cert_file", b"CERTIFICATE-----")
        ),
    )


def _read_pem(path: str | os.PathLike[str], name: str, marker: bytes) -> bytes:
    data = Path(path).read_bytes()  # OSError names the path
    if b"-----BEGIN " not in data or marker not in data:
        what = "private key" if marker == b"KEY-----" else "certificate"
        raise ValueError(f"{name} {os.fspath(path)!r} holds no PEM {what} (a '-----BEGIN' block)")
    return data


def _ids(ids: Sequence[str]) -> list[str]:
    # A lone str is a Sequence[str] too: sending its characters as ids would be a silent mistake.
    if isinstance(ids, str):
        raise TypeError("ids must be a sequence of dead-letter ids, not a single str")
    return list(ids)
