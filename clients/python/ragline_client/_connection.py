"""What both clients make of their constructor's arguments: the metadata every call carries (the
API key among it), the channel's credentials and options, the per-call timeout, the retry policy,
and the error a failed call becomes. Opening the channel is left to each client."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from ragline_client._errors import RaglineClientError, from_rpc_error
from ragline_client._retry import DEFAULT_RETRY, RetryPolicy

DEFAULT_GATEWAY = "127.0.0.1:50051"

# Documents may be up to 64 MiB; leave room for the rest of the request.
_MAX_MESSAGE_BYTES = 80 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    # gRPC waits ever longer between reconnects to a gateway that is down (up to 120 s), and
    # fails calls at once meanwhile: a restarted gateway would stay unreachable long after it
    # is back. Capped at 1 s, the default retries (about 3 s) outlast a reconnect's wait.
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@dataclass(frozen=True)
class Connection:
    """How to reach a gateway and call it. Its repr leaves out the metadata (it holds the key)."""

    address: str
    metadata: tuple[tuple[str, str], ...] = field(repr=False)
    timeout: float | None
    credentials: grpc.ChannelCredentials | None = field(repr=False)
    retry: RetryPolicy

    @property
    def tls(self) -> bool:
        return self.credentials is not None

    def error(self, exc: grpc.RpcError) -> RaglineClientError:
        """The client error for a call to this gateway that failed with `exc`."""
        return from_rpc_error(exc, self.address, tls=self.tls)


def connection(
    address: str,
    *,
    api_key: str | None,
    ca_file: str | os.PathLike[str] | None,
    cert_file: str | os.PathLike[str] | None,
    key_file: str | os.PathLike[str] | None,
    credentials: grpc.ChannelCredentials | None,
    metadata: Sequence[tuple[str, str]],
    timeout: float | None,
    retry: RetryPolicy | None,
) -> Connection:
    """The Connection for a client's arguments (see RaglineClient for each); the TLS files are
    read here, once: OSError when one cannot be read, ValueError when it holds no PEM block."""
    if ca_file is not None or cert_file is not None or key_file is not None:
        if credentials is not None:
            raise ValueError("give credentials or ca_file/cert_file/key_file, not both")
        credentials = _tls_credentials(ca_file, cert_file, key_file)
    return Connection(
        address=address,
        metadata=tuple(metadata) + _authorization(api_key, metadata),
        timeout=timeout,
        credentials=credentials,
        retry=DEFAULT_RETRY if retry is None else retry,
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
