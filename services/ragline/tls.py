"""TLS credentials for ragline's gRPC ports and for the channels between its services, built from
the PEM files the RAGLINE_TLS_* settings name (config.Settings says which go together).

Files are read once, at start; a renewed certificate takes a restart (a rolling one is enough:
clients reconnect). Every problem with a file is a ConfigurationError naming the setting (or the
CLI flag), the path and what to do; a file's contents never appear in a message or a log.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from ragline.config import Settings
from ragline.errors import ConfigurationError

PLAINTEXT = "plaintext"
TLS = "TLS"
MUTUAL_TLS = "mutual TLS"


@dataclass(frozen=True)
class ServerSecurity:
    """How a server's port is secured: `credentials` None means plaintext; `mode` says which, for
    the service's start-up line."""

    credentials: grpc.ServerCredentials | None
    mode: str


def server_mode(settings: Settings) -> str:
    """PLAINTEXT, TLS or MUTUAL_TLS: what the settings make a service's port serve."""
    if not settings.tls_cert_file:
        return PLAINTEXT
    return MUTUAL_TLS if settings.tls_client_ca_file else TLS


def server_security(settings: Settings) -> ServerSecurity:
    """The credentials for a service's own listening port."""
    if not settings.tls_cert_file:
        return ServerSecurity(None, PLAINTEXT)
    cert, key = read_key_pair(
        ("RAGLINE_TLS_CERT_FILE", settings.tls_cert_file),
        ("RAGLINE_TLS_KEY_FILE", settings.tls_key_file),
    )
    client_ca = None
    if settings.tls_client_ca_file:
        client_ca = read_certificates("RAGLINE_TLS_CLIENT_CA_FILE", settings.tls_client_ca_file)
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
    return ServerSecurity(credentials, server_mode(settings))


def http_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the gateway's HTTP port: the gRPC port's certificate and key (and its
    client CA, which makes it mutual TLS there too); None, plaintext, without them."""
    if not settings.tls_cert_file:
        return None
    cert = ("RAGLINE_TLS_CERT_FILE", settings.tls_cert_file)
    key = ("RAGLINE_TLS_KEY_FILE", settings.tls_key_file)
    read_key_pair(cert, key)  # the checks that say what is wrong with a file
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file, password=b"")
    if settings.tls_client_ca_file:
        ca = read_certificates("RAGLINE_TLS_CLIENT_CA_FILE", settings.tls_client_ca_file)
        context.load_verify_locations(cadata=ca.decode())
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """The credentials for the channels a service opens to the others; None means plaintext."""
    if not settings.tls_ca_file:
        return None
    return client_credentials(
        ("RAGLINE_TLS_CA_FILE", settings.tls_ca_file),
        ("RAGLINE_TLS_CLIENT_CERT_FILE", settings.tls_client_cert_file),
        ("RAGLINE_TLS_CLIENT_KEY_FILE", settings.tls_client_key_file),
    )


def client_credentials(
    ca: tuple[str, str], cert: tuple[str, str], key: tuple[str, str]
) -> grpc.ChannelCredentials:
    """TLS channel credentials from (name, path) pairs, where name is the setting or flag that gave
    the path, for messages. An empty ca path trusts the system's roots; empty cert and key paths
    present no client certificate."""
    roots = read_certificates(*ca) if ca[1] else None
    if bool(cert[1]) != bool(key[1]):
        raise ConfigurationError(
            f"{cert[0]} and {key[0]} go together: give both to present a client certificate."
        )
    pair = read_key_pair(cert, key) if cert[1] else (None, None)
    return grpc.ssl_channel_credentials(
        root_certificates=roots, private_key=pair[1], certificate_chain=pair[0]
    )


def read_certificates(name: str, path: str) -> bytes:
    """The PEM certificates in `path` (a CA bundle), checked to parse."""
    data = _read(name, path)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode())
    except (UnicodeDecodeError, ssl.SSLError, ValueError):
        raise ConfigurationError(
            f"{name}={path} holds no readable PEM certificate (a '-----BEGIN CERTIFICATE-----' "
            "block): give the CA's certificate in PEM form (convert DER with `openssl x509 "
            "-inform der`)."
        ) from None
    return data


def read_key_pair(cert: tuple[str, str], key: tuple[str, str]) -> tuple[bytes, bytes]:
    """(certificate chain, private key) from (name, path) pairs, checked to parse and to belong
    together."""
    cert_data, key_data = _read(*cert), _read(*key)
    if b"-----BEGIN CERTIFICATE-----" not in cert_data:
        raise ConfigurationError(
            f"{cert[0]}={cert[1]} holds no PEM certificate (a '-----BEGIN CERTIFICATE-----' "
            "block): give the certificate (chain) in PEM form."
        )
    if b"ENCRYPTED" in key_data:
        raise ConfigurationError(
            f"{key[0]}={key[1]} is an encrypted private key, which gRPC cannot use: give it "
            "unencrypted (`openssl pkey -in KEY -out PLAIN`) and protect the file instead."
        )
    if b"PRIVATE KEY-----" not in key_data:
        raise ConfigurationError(
            f"{key[0]}={key[1]} holds no PEM private key (a '-----BEGIN PRIVATE KEY-----' "
            "block): give the certificate's private key in PEM form."
        )
    try:
        # A password, though never needed here, keeps OpenSSL from prompting on a terminal.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert[1], key[1], password=b"")
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigurationError(
                f"{key[0]}={key[1]} is not the private key of the certificate in "
                f"{cert[0]}={cert[1]}: give the key the certificate was issued for."
            ) from None
        raise ConfigurationError(
            f"{cert[0]}={cert[1]} or {key[0]}={key[1]} does not parse ({exc.reason}): "
            "give a PEM certificate and its PEM private key."
        ) from None
    return cert_data, key_data


def _read(name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        problem = "which does not exist"
    except IsADirectoryError:
        problem = "which is a folder, not a file"
    except OSError as exc:
        problem = f"which cannot be read ({exc.strerror})"
    raise ConfigurationError(
        f"{name} names {path}, {problem}: point it at a PEM file this process can read."
    )
