"""The client's errors. Every failed call raises one of these, never a bare grpc.RpcError.

RaglineClientError               .code: the gRPC status name; .details: the server's words;
│                                .retryable: whether the same call may succeed later
├── InvalidArgumentError         INVALID_ARGUMENT: a request field is malformed (.field names it)
├── NotFoundError                NOT_FOUND: an unknown job or document
├── UnauthenticatedError         UNAUTHENTICATED: no API key, a malformed one, or an unknown one
├── PermissionDeniedError        PERMISSION_DENIED: the API key lacks the scope the call needs
├── ResourceExhaustedError       RESOURCE_EXHAUSTED: too large, or the pipeline is busy
│                                (.retry_after: the seconds the gateway asked to wait, if it did)
├── FailedPreconditionError      FAILED_PRECONDITION: not possible in the current state
├── UnavailableError             UNAVAILABLE: the gateway cannot be reached
└── DeadlineExceededError        DEADLINE_EXCEEDED: no answer in time (also a TimeoutError)

The gateway names the bad field (google.rpc.BadRequest) and the delay to wait (google.rpc.RetryInfo)
in the status details it sends along; `from_rpc_error` reads both, for the sync and async clients.
"""

from __future__ import annotations

import grpc

from ragline_client._status_details import bad_field, retry_delay


class RaglineClientError(Exception):
    """Base of every error the client raises. `str(err)` is a sentence a person can act on.

    `retryable` says whether the same call may succeed if made again later; the clients' retry
    policy retries only those."""

    retryable = False

    def __init__(self, message: str, *, code: str = "UNKNOWN", details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class InvalidArgumentError(RaglineClientError):
    """The request was malformed. `field` names the bad field, e.g. ``documents[3].content_type``
    ("" when the gateway did not say); `details` is the gateway's sentence about it."""

    def __init__(
        self, message: str, *, code: str = "INVALID_ARGUMENT", details: str = "", field: str = ""
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.field = field


class NotFoundError(RaglineClientError):
    """The job or document is unknown to the gateway."""


class UnauthenticatedError(RaglineClientError):
    """The gateway wants an API key and got none, a malformed one, or one it does not know (or
    no longer knows: revoked). Pass a valid key as `RaglineClient(api_key=...)`."""


class PermissionDeniedError(RaglineClientError):
    """The API key is valid but lacks the scope the call needs; `details` names the scope."""


class ResourceExhaustedError(RaglineClientError):
    """The document is over the size limit or the pipeline's queue is full; retry later.

    `retry_after` is how many seconds the gateway asked the client to wait before retrying (its
    queue is full), or None when it did not ask (a size limit: retrying the same call cannot help).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "RESOURCE_EXHAUSTED",
        details: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
        self.retryable = retry_after is not None


class FailedPreconditionError(RaglineClientError):
    """The call cannot be carried out in the current state, e.g. cancelling a completed job.
    Retrying the same call will not help."""


class UnavailableError(RaglineClientError):
    """The gateway could not be reached or could not serve the call right now. Retryable, unless
    the cause is the TLS settings (a CA that did not sign the gateway's certificate, TLS against
    a plaintext port, a missing client certificate): trying again cannot fix those."""

    def __init__(
        self, message: str, *, code: str = "UNAVAILABLE", details: str = "", retryable: bool = True
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retryable = retryable


class DeadlineExceededError(RaglineClientError, TimeoutError):
    """The call, or a wait for a job, did not finish in the time allowed."""


_BY_CODE: dict[str, type[RaglineClientError]] = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "NOT_FOUND": NotFoundError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
}

# How the details begin that this process's own gRPC core writes when no connection could be made
# (as opposed to the gateway's words, which may quote such details about its own calls onward).
_CONNECT_FAILURE_HINTS = (
    "failed to connect",
    "connection refused",
    "dns resolution failed",
    "connections to all backends failing",
    "unreachable",
    "errors resolving",
    "lookup",
    "socket closed",
    "connection reset",
)


def from_rpc_error(exc: grpc.RpcError, address: str, *, tls: bool = False) -> RaglineClientError:
    """The client error for a failed call to the gateway at `address`, over TLS if `tls`."""
    # A failed call's RpcError is also a grpc.Call with code() and details(); read them defensively.
    code_fn, details_fn = getattr(exc, "code", None), getattr(exc, "details", None)
    status = code_fn() if callable(code_fn) else None
    code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
    raw_details = details_fn() if callable(details_fn) else None
    details = raw_details if isinstance(raw_details, str) else ""
    cls = _BY_CODE.get(code, RaglineClientError)
    if cls is UnavailableError:
        tls_problem = _tls_message(details, address, tls)
        message = tls_problem or _message(code, details, address)
        return UnavailableError(message, details=details, retryable=tls_problem is None)
    message = _message(code, details, address)
    if cls is InvalidArgumentError:
        return InvalidArgumentError(
            message, details=details, field=bad_field(exc) or _field_in(details)
        )
    if cls is ResourceExhaustedError:
        return ResourceExhaustedError(message, details=details, retry_after=retry_delay(exc))
    return cls(message, code=code, details=details)


def _field_in(details: str) -> str:
    """The field an INVALID_ARGUMENT's words begin with ("field: problem"), from a gateway that
    sent no BadRequest; "" when they name none."""
    field, sep, _ = details.partition(": ")
    return field if sep and field and " " not in field else ""


def _tls_message(details: str, address: str, tls: bool) -> str | None:
    """What a failed connection says about TLS, if anything: gRPC's own words name the cause
    (OpenSSL's reason, or a closed socket), not which setting to change."""
    words = details.lower()
    if not words.startswith(_CONNECT_FAILURE_HINTS):
        return None  # the gateway's own words, e.g. about its call to the embedder
    if "wrong_version_number" in words:
        return (
            f"the ragline gateway at {address} does not speak TLS (it serves plaintext): "
            "connect without a CA (drop --ca / ca_file), or turn TLS on at the gateway"
        )
    if "certificate_verify_failed" in words or "certificate verify failed" in words:
        return (
            f"TLS handshake with the ragline gateway at {address} failed: its certificate is not "
            "signed by the CA you gave (or has expired); check --ca / ca_file"
        )
    if "hostname verification" in words or "peer name" in words:
        host = address.rsplit(":", 1)[0]
        return (
            f"TLS handshake with the ragline gateway at {address} failed: its certificate does "
            f"not name {host}; connect by a name the certificate holds, or reissue it with "
            f"{host} among its subject alternative names"
        )
    if "handshake" in words:
        return f"TLS handshake with the ragline gateway at {address} failed: {details}"
    closed = "socket closed" in words or "connection reset" in words
    if closed and words.startswith("failed to connect"):  # while connecting, not mid-call
        if tls:
            return (
                f"the ragline gateway at {address} closed the connection during the TLS "
                "handshake: it requires mutual TLS, with a client certificate signed by a CA it "
                "trusts; give one (--cert and --key / cert_file and key_file), or check that "
                "yours was signed by that CA"
            )
        return (
            f"cannot reach the ragline gateway at {address}: it closed the connection (if it "
            "serves TLS, connect with its CA: --ca / ca_file)"
        )
    return None


def _message(code: str, details: str, address: str) -> str:
    said = f": {details}" if details else ""
    if code == "UNAVAILABLE":
        if not details or details.lower().startswith(_CONNECT_FAILURE_HINTS):
            return (
                f"cannot reach the ragline gateway at {address}: is it running? "
                "(start it with `ragline up`)"
            )
        return f"the ragline gateway at {address} is unavailable{said} (retry in a moment)"
    if code == "INVALID_ARGUMENT":
        return f"the gateway rejected the request{said}"
    if code == "NOT_FOUND":
        return details or "not found"
    if code == "RESOURCE_EXHAUSTED":
        return (
            f"the gateway refused the request{said} (the document is over the size limit "
            "or the pipeline is busy: send smaller documents or retry later)"
        )
    if code == "FAILED_PRECONDITION":
        return details or "the gateway cannot do that in the current state"
    if code == "DEADLINE_EXCEEDED":
        return f"the ragline gateway at {address} did not answer in time{said}"
    if code == "UNAUTHENTICATED":
        return f"the gateway at {address} did not accept the call's API key{said}"
    if code == "PERMISSION_DENIED":
        return f"the gateway at {address} refused the call{said}"
    return f"the call to the ragline gateway at {address} failed with {code}{said}"
