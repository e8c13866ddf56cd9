"""Typed settings, built once in `main()` from the environment and flags, then passed in.

Nothing here reads `os.environ` at import time: `Settings.from_env` takes the mapping to read.
Every variable is named RAGLINE_<FIELD>; `ragline --help` lists them with their defaults, and
README.md's table says what each does (tests/unit/test_settings_docs.py keeps both complete).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ragline.errors import ConfigurationError
from ragline.retry import RetryPolicy

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

MiB = 1024 * 1024


# The setting behind each RetryPolicy field, for messages.
_RETRY_VARIABLES = {
    "initial_interval_s": "RAGLINE_RETRY_INITIAL_DELAY_S",
    "backoff_coefficient": "RAGLINE_RETRY_MULTIPLIER",
    "maximum_interval_s": "RAGLINE_RETRY_MAX_DELAY_S",
    "maximum_attempts": "RAGLINE_RETRY_MAX_ATTEMPTS",
    "jitter": "RAGLINE_RETRY_JITTER",
    "maximum_deliveries": "RAGLINE_MAX_DELIVERIES",
}


@dataclass(frozen=True)
class Settings:
    """Everything a ragline process needs to know about its deployment."""

    # Where the job store lives, and the broker when `broker` is "redis".
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Which broker carries the stage queues: "redis" (Streams) or "rabbitmq".
    broker: str = "redis"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Prefix of every Redis key and queue name, so deployments (and tests) sharing a server never meet.
    namespace: str = "ragline"

    # The embedding model: the default id, a local folder, or a hub id already in the local cache.
    model: str = DEFAULT_MODEL
    # "auto" uses CUDA when present; "cpu" or "cuda" force one.
    device: str = "auto"
    # Threads torch may use for the model; 0 lets torch decide.
    torch_threads: int = 0
    # What the model computes in: "auto" picks bf16 or fp16 on a GPU, bf16 on a CPU with native
    # bf16 (avx512_bf16 / amx_bf16), fp32 otherwise; "fp32", "bf16" or "fp16" (GPU only) force one.
    precision: str = "auto"

    # A Milvus Lite file path (the default, opened by the indexer alone) or any Milvus server URI.
    milvus_uri: str = "ragline-data/milvus.db"
    milvus_token: str = ""
    milvus_collection: str = "ragline_chunks"

    # Where each service listens, and where the others reach it.
    gateway_address: str = "127.0.0.1:50051"
    chunker_address: str = "127.0.0.1:50052"
    embedder_address: str = "127.0.0.1:50053"
    indexer_address: str = "127.0.0.1:50054"
    # Overrides the listening address of the one service a process runs (e.g. 0.0.0.0:50053 in a container).
    listen_address: str = ""

    # TLS on the port this service listens on (PEM files, read once at start): the certificate
    # (chain) and its key, both or neither. A client CA as well makes it mutual TLS: every client
    # must present a certificate that CA signed.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # TLS on the channels this service opens to the others (the gateway's to the embedder and the
    # indexer; also `ragline up`'s health checks): the CA that signed their certificates turns it
    # on; the client certificate and key are what this service presents to mutual-TLS peers.
    tls_ca_file: str = ""
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""

    # Gateway limits.
    max_document_bytes: int = 64 * MiB
    max_batch_documents: int = 1000
    max_queue_depth: int = 100_000
    # Under load, accepted documents are written to Redis in group commits at most this often
    # (milliseconds): fewer, larger round trips, each far cheaper per document. A call arriving
    # after a quiet spell is committed at once; 0 commits as soon as the previous commit ends.
    commit_interval_ms: float = 3.0
    # With RabbitMQ, chunk tasks are written to an outbox in Redis with their jobs; the gateway
    # that wrote one publishes it at once, and any gateway's relay publishes one still there this
    # many seconds later (its gateway died). Keep it well above a publish's worst time (10 s).
    outbox_lease_s: float = 30.0

    # Chunking defaults for requests that leave them unset; 0 means the model's input limit.
    default_chunk_size: int = 0
    default_chunk_overlap: int = 32
    # The chunker cuts a document's chunks into embed tasks of at most this many chunks,
    # so one large document fans out over many embedders.
    chunks_per_embed_task: int = 32

    # Embedder batching: chunks are gathered across messages and jobs up to this many tokens per
    # batch; 0 lets the encoder pick for its device (Encoder.default_batch_tokens).
    embed_batch_tokens: int = 0
    # A read that returns less than a full batch of messages keeps reading this long (at most)
    # before the embedder starts on it: after a quiet spell, chunks arrive over milliseconds.
    embed_gather_ms: float = 50.0

    # How many messages a stage reads from its queue at once.
    read_batch_size: int = 64
    # A message held this long by a consumer that stopped answering is given to another consumer.
    visibility_timeout_s: float = 60.0

    # What a stage does with a failed task (see ragline.retry.RetryPolicy). Each stage runs in its
    # own process, so each stage's Deployment can set its own.
    retry_max_attempts: int = 5
    retry_initial_delay_s: float = 1.0
    retry_multiplier: float = 2.0
    retry_max_delay_s: float = 60.0
    retry_jitter: float = 0.2
    # A message that crashed its worker this many times running alone is dead-lettered.
    max_deliveries: int = 5
    # On SIGTERM, how long a service may take to finish its in-flight work before it exits.
    shutdown_grace_s: float = 30.0

    # An unfinished job that nothing has changed for this long is stuck: GetJob says so, and
    # `ragline doctor` says why.
    stuck_after_s: float = 600.0
    # A stuck job whose task no queue holds is published again from the job store by the
    # gateways, at most this many times; then (or at once with 0) it is failed with the reason.
    max_repairs: int = 3
    # How long finished jobs stay readable (GetJob, request ids) before Redis drops them.
    # Unfinished jobs never expire.
    job_retention_s: float = 7 * 24 * 3600.0

    # API keys: the gateway requires one on every call when this names a keys file (hashes only;
    # `ragline keys create` writes it), and refuses to start when the file is missing or invalid.
    # Empty: auth is off and every call is tenant `default` (local use).
    keys_file: str = ""
    # How often (seconds) the gateway checks the keys file for changes and reloads it.
    keys_reload_s: float = 2.0
    # Where the gateway also serves HTTP/JSON with server-sent events (host:port, e.g.
    # 0.0.0.0:8080; docs/http.md), HTTPS with the gRPC port's certificate; empty serves none.
    http_address: str = ""
    # The origins (comma-separated, exact, e.g. http://127.0.0.1:5173) whose pages may call the
    # HTTP API cross-origin, or `*` for any; empty sends no CORS headers.
    http_cors_origins: str = ""
    # Where this process serves Prometheus metrics at /metrics (host:port, e.g. 0.0.0.0:9464);
    # empty serves none. `ragline up` gives its four services this port and the three after it.
    metrics_address: str = ""
    # Tenants (comma-separated) whose metrics carry their own `tenant` label; every other tenant
    # is counted as `other`, which bounds the label's cardinality.
    metrics_tenants: str = "default"

    # Deliberate faults for resilience tests and chaos drills, off when empty; see ragline.faults.
    faults: str = ""

    log_level: str = "INFO"
    # "text": one readable line per event, for a terminal; "json": one JSON object per line with
    # the job, document, stage and trace ids where known, for a log pipeline.
    log_format: str = "text"

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Settings from RAGLINE_* variables in `env`, then `overrides` (e.g. from CLI flags) on top.

        Raises ConfigurationError naming the variable when a value does not parse.
        """
        values: dict[str, Any] = {}
        types = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            var = f"RAGLINE_{f.name.upper()}"
            if var in env:
                values[f.name] = _parse(var, env[var], types[f.name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raises ConfigurationError for values no deployment could run with."""
        if self.broker not in ("redis", "rabbitmq"):
            raise ConfigurationError(
                f"RAGLINE_BROKER is {self.broker!r}; choose 'redis' or 'rabbitmq'."
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigurationError(
                f"RAGLINE_DEVICE is {self.device!r}; choose 'auto', 'cpu' or 'cuda'."
            )
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigurationError(
                f"RAGLINE_PRECISION is {self.precision!r}; choose 'auto', 'fp32', 'bf16' or 'fp16'."
            )
        if self.log_format not in ("text", "json"):
            raise ConfigurationError(
                f"RAGLINE_LOG_FORMAT is {self.log_format!r}; choose 'text' or 'json'."
            )
        for name in (
            "max_document_bytes",
            "chunks_per_embed_task",
            "read_batch_size",
            "max_batch_documents",
            "max_queue_depth",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"RAGLINE_{name.upper()} must be positive.")
        for name in ("outbox_lease_s", "keys_reload_s", "stuck_after_s", "job_retention_s"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"RAGLINE_{name.upper()} must be positive.")
        for name in ("commit_interval_ms", "embed_gather_ms", "embed_batch_tokens", "max_repairs"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"RAGLINE_{name.upper()} must not be negative.")
        _check_address("RAGLINE_METRICS_ADDRESS", self.metrics_address, "9464", "metrics")
        _check_address("RAGLINE_HTTP_ADDRESS", self.http_address, "8080", "HTTP")
        wrong = self.retry_policy().problems()
        if wrong:
            raise ConfigurationError(
                "; ".join(f"{_RETRY_VARIABLES[field]} {problem}" for field, problem in wrong) + "."
            )
        if self.default_chunk_overlap < 0 or self.default_chunk_size < 0:
            raise ConfigurationError(
                "RAGLINE_DEFAULT_CHUNK_SIZE and _OVERLAP must not be negative."
            )
        self._validate_tls()

    def _validate_tls(self) -> None:
        """Which TLS files go together; the files themselves are read by ragline.tls at start."""
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigurationError(
                "RAGLINE_TLS_CERT_FILE and RAGLINE_TLS_KEY_FILE go together: set both to serve "
                "TLS, or neither to serve plaintext."
            )
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigurationError(
                "RAGLINE_TLS_CLIENT_CA_FILE turns on mutual TLS, which needs the server's own "
                "certificate too: set RAGLINE_TLS_CERT_FILE and RAGLINE_TLS_KEY_FILE."
            )
        if bool(self.tls_client_cert_file) != bool(self.tls_client_key_file):
            raise ConfigurationError(
                "RAGLINE_TLS_CLIENT_CERT_FILE and RAGLINE_TLS_CLIENT_KEY_FILE go together: set "
                "both to present a client certificate, or neither."
            )
        if self.tls_client_cert_file and not self.tls_ca_file:
            raise ConfigurationError(
                "RAGLINE_TLS_CLIENT_CERT_FILE is presented on TLS channels, which "
                "RAGLINE_TLS_CA_FILE turns on: set it to the CA that signed the other services' "
                "certificates."
            )

    def retry_policy(self) -> RetryPolicy:
        """The retry policy these settings describe."""
        return RetryPolicy(
            initial_interval_s=self.retry_initial_delay_s,
            backoff_coefficient=self.retry_multiplier,
            maximum_interval_s=self.retry_max_delay_s,
            maximum_attempts=self.retry_max_attempts,
            jitter=self.retry_jitter,
            maximum_deliveries=self.max_deliveries,
        )

    @classmethod
    def variables(cls) -> list[tuple[str, str]]:
        """(variable name, default as text) for every setting, in declaration order."""
        return [(f"RAGLINE_{f.name.upper()}", str(f.default)) for f in dataclasses.fields(cls)]

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _check_address(var: str, address: str, example_port: str, what: str) -> None:
    """An optional host:port setting."""
    _, sep, port = address.rpartition(":")
    if address and not (sep and port.isdigit() and int(port) < 65536):
        raise ConfigurationError(
            f"{var} is {address!r}; use host:port, e.g. 0.0.0.0:{example_port}, or leave it "
            f"empty to serve no {what}."
        )


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse(var: str, raw: str, kind: type) -> Any:
    """`raw` as the field's type: int, float, bool or str. (A dataclass and this function are
    all ~35 flat settings need; pydantic-settings would add a dependency for no more.)"""
    if kind is bool:
        word = raw.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise ConfigurationError(f"{var}={raw!r} is not a yes/no value; use true or false.")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{var}={raw!r} is not a number.") from exc
    return raw
