"""ragline_client: the Python client for ragline's gRPC IngestService.

    from ragline_client import RaglineClient

    with RaglineClient("127.0.0.1:50051", api_key=os.environ.get("RAGLINE_API_KEY")) as client:
        job = client.ingest_file("notes.md")
        job = client.wait(job.job_id, timeout=120)
        for hit in client.search("what did we decide?", top_k=5):
            print(f"{hit.score:.3f}", hit.document_id, hit.text[:80])

The same from asyncio code, on grpc.aio, with the same options and methods, each awaited:

    async with AsyncRaglineClient("127.0.0.1:50051") as client:
        job = await client.ingest_file("notes.md")
        async for update in client.watch(job.job_id):
            print(update.state, update.progress.chunks_indexed)

Calls return the plain frozen dataclasses below, never protobuf messages, and raise a
`RaglineClientError` subclass, never a bare grpc.RpcError.
"""

from ragline_client._async_client import AsyncRaglineClient
from ragline_client._client import DEFAULT_GATEWAY, RaglineClient
from ragline_client._errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RaglineClientError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from ragline_client._retry import RetryPolicy
from ragline_client._types import (
    CONTENT_TYPES,
    DeadLetter,
    DeadLetterPage,
    Document,
    DocumentInfo,
    Hit,
    Job,
    JobProgress,
    JobState,
    Metadata,
    Stage,
    guess_content_type,
)

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_GATEWAY",
    "AsyncRaglineClient",
    "DeadLetter",
    "DeadLetterPage",
    "DeadlineExceededError",
    "Document",
    "DocumentInfo",
    "FailedPreconditionError",
    "Hit",
    "InvalidArgumentError",
    "Job",
    "JobProgress",
    "JobState",
    "Metadata",
    "NotFoundError",
    "PermissionDeniedError",
    "RaglineClient",
    "RaglineClientError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Stage",
    "UnauthenticatedError",
    "UnavailableError",
    "guess_content_type",
]
