"""The project's errors, one tree. Each error knows whether retrying can help.

    RaglineError                      (retryable: False unless said otherwise)
    ├── InvalidArgument               a request field is malformed; names the field
    ├── NotFound                      an unknown job or document
    ├── Unauthenticated               no API key, a malformed one, or one the gateway does not know
    ├── PermissionDenied              the API key lacks the scope the call needs; names the scope
    ├── FailedPrecondition            the request cannot apply in the current state (e.g. cancel a completed job)
    ├── ResourceExhausted             over a size limit, or a queue is full (backpressure, with
    │                                 the delay to retry after)
    ├── PermanentTaskError            a queued task can never succeed (bad data): dead-letter at once
    ├── TransientError                retryable: the same work may succeed later
    │   ├── BrokerUnavailable         the broker did not answer
    │   ├── StoreUnavailable          the job store or vector store did not answer
    │   └── DependencyUnavailable     another ragline service did not answer
    ├── DependencyFailed              another ragline service answered with an error of its own
    └── ConfigurationError            the deployment is set up wrong; says what to change

Adapters re-raise library errors as one of these (`raise X from exc`), and ragline.grpc_status
maps them to gRPC statuses and back, in one table, so no exception reaches a client as UNKNOWN.
"""

from __future__ import annotations


class RaglineError(Exception):
    """Base of every error ragline raises on purpose."""

    retryable: bool = False


class InvalidArgument(RaglineError):
    """A request field is malformed. `field` is its path, e.g. ``documents[2].content_type``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def at(self, prefix: str) -> InvalidArgument:
        """The same error with its field path placed under `prefix`."""
        return InvalidArgument(f"{prefix}.{self.field}", self.problem)


class NotFound(RaglineError):
    """An unknown job or document."""


class Unauthenticated(RaglineError):
    """The call carried no API key, a malformed one, or one that is unknown or revoked. The
    message never holds key material."""


class PermissionDenied(RaglineError):
    """The caller's API key is valid but lacks `scope`, the scope the call needs (None when the
    error came back from another service without it)."""

    def __init__(self, message: str, *, scope: str | None = None) -> None:
        super().__init__(message)
        self.scope = scope


class FailedPrecondition(RaglineError):
    """The request cannot apply to the thing in its current state."""


class ResourceExhausted(RaglineError):
    """Over a size limit, or a queue is full. `retry_after_s`, when set, is how long a client
    should wait before trying again (a full queue); None when retrying cannot help (too large)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentTaskError(RaglineError):
    """A queued task can never succeed, e.g. a PDF that cannot be parsed. Goes to the dead-letter queue at once."""


class TransientError(RaglineError):
    """The same work may succeed if tried again later."""

    retryable = True


class BrokerUnavailable(TransientError):
    """The message broker did not answer."""


class StoreUnavailable(TransientError):
    """The job store or the vector store did not answer."""


class DependencyUnavailable(TransientError):
    """Another ragline service did not answer."""


class DependencyFailed(RaglineError):
    """Another ragline service answered a call with an error that is not the caller's fault (its
    own log has the details)."""


class ConfigurationError(RaglineError):
    """The deployment is set up wrong. The message says what to change."""


def is_retryable(exc: BaseException) -> bool:
    """Whether `exc` is worth retrying. Errors that are not ragline's own count as retryable:
    an unknown failure may be transient, and the retry policy's attempt limit still bounds it."""
    if isinstance(exc, RaglineError):
        return exc.retryable
    return True
