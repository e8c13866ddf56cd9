"""Every Prometheus metric ragline exports, defined once, and the `/metrics` server each service
starts (see README, "Operating ragline").

Names follow Prometheus' guide: `ragline_` first, the base unit last (`_seconds`), `_total` on
counters. Metrics are recorded per batch, never per chunk or token, so a hot path pays a few
dictionary look-ups per batch. They are made unregistered: each service registers the groups it
really records (`STAGE`, `EMBEDDER`, `INDEXER`, `GATEWAY`) on a registry of its own when it
starts its server, so a service never exports another's metrics at zero, and nothing lands in
prometheus-client's global registry (the metric objects themselves are module-level: tests read
differences).

Broker-wide and store-wide figures (queue backlog, stuck jobs) are not kept in the process: a
collector reads them from the broker or the job store when Prometheus scrapes. Every replica of
a stage reports the same value for its queue, so aggregate them with `max by (stage)`, never
`sum` (the gauges carry no per-process meaning, and `max` stays right as replicas come and go).

Tenant labels: the tenants named in RAGLINE_METRICS_TENANTS get their own `tenant` label value;
every other tenant is counted as `other`, so the label's cardinality is bounded by the setting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ragline.broker.base import Backlog
from ragline.errors import ConfigurationError, InvalidArgument, ResourceExhausted, TransientError

__all__ = [
    "EMBEDDER",
    "GATEWAY",
    "INDEXER",
    "STAGE",
    "BacklogCollector",
    "MetricsServer",
    "StuckJobsCollector",
    "TenantLabels",
    "parse_address",
    "refusal_reason",
    "start_metrics_server",
]

log = logging.getLogger(__name__)

OTHER_TENANT = "other"
# How long a scrape waits for the broker or the job store before it reports what it has.
SCRAPE_READ_TIMEOUT_S = 5.0

# Buckets from 1 ms to 2 min: a chunker batch takes milliseconds, an embedder batch seconds.
_DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Jobs: from a second to an hour, accept to completed.
_JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


# -- every stage (ragline.stage.runner) ------------------------------------------------------
TASKS = Counter(
    "ragline_tasks",
    "Tasks a stage settled, by outcome: ok (done and acked), retried (scheduled again with "
    "backoff), dead_lettered (moved to the stage's dead-letter queue), dropped (its job was "
    "cancelled or is gone).",
    ["stage", "outcome"],
    registry=None,
)
HANDLE_SECONDS = Histogram(
    "ragline_stage_handle_duration_seconds",
    "Time a stage's handler took over one batch of tasks (bisecting a failed batch included; "
    "reading and settling not).",
    ["stage"],
    buckets=_DURATION_BUCKETS,
    registry=None,
)
BATCH_TASKS = Histogram(
    "ragline_stage_batch_tasks",
    "Tasks in each batch a stage handled.",
    ["stage"],
    buckets=_BATCH_BUCKETS,
    registry=None,
)
STAGE: tuple[Collector, ...] = (TASKS, HANDLE_SECONDS, BATCH_TASKS)

# -- the embedder ----------------------------------------------------------------------------
EMBEDDED_CHUNKS = Counter(
    "ragline_embedder_chunks", "Chunks the embedder embedded from its queue.", registry=None
)
EMBEDDED_TOKENS = Counter(
    "ragline_embedder_tokens",
    "Tokens of the chunks the embedder embedded (special tokens in, padding out).",
    registry=None,
)
PADDED_TOKENS = Counter(
    "ragline_embedder_padded_tokens",
    "Tokens the model computed, padding included; tokens_total / padded_tokens_total is the "
    "padding efficiency (1.0: no padding).",
    registry=None,
)
MODEL_BATCH_SECONDS = Histogram(
    "ragline_embedder_model_batch_duration_seconds",
    "Model forward time of each padded batch (on a GPU, from queued to its vectors back on "
    "the host, less the overlap with other batches).",
    buckets=_DURATION_BUCKETS,
    registry=None,
)
MODEL_INFO = Info(
    "ragline_embedder_model",
    "The model the embedder runs, where and in what precision.",
    registry=None,
)
EMBEDDER: tuple[Collector, ...] = (
    EMBEDDED_CHUNKS,
    EMBEDDED_TOKENS,
    PADDED_TOKENS,
    MODEL_BATCH_SECONDS,
    MODEL_INFO,
)

# -- the indexer -----------------------------------------------------------------------------
INDEXED_CHUNKS = Counter(
    "ragline_indexer_chunks", "Chunks the indexer wrote to the vector store.", registry=None
)
JOB_SECONDS = Histogram(
    "ragline_job_duration_seconds",
    "Jobs completed, and the time from the gateway accepting each to its last chunk indexed.",
    ["tenant"],
    buckets=_JOB_BUCKETS,
    registry=None,
)
INDEXER: tuple[Collector, ...] = (INDEXED_CHUNKS, JOB_SECONDS)

# -- the gateway -----------------------------------------------------------------------------
RPCS = Counter(
    "ragline_grpc_server_handled",
    "RPCs the gateway answered, by service, method and the status code the client saw.",
    ["grpc_service", "grpc_method", "grpc_code"],
    registry=None,
)
RPC_SECONDS = Histogram(
    "ragline_grpc_server_handling_seconds",
    "Time the gateway took to answer each RPC (a stream: until it ended).",
    ["grpc_service", "grpc_method"],
    buckets=_DURATION_BUCKETS,
    registry=None,
)
# The same calls over HTTP/JSON (ragline.http), apart: their codes are HTTP statuses.
HTTP_REQUESTS = Counter(
    "ragline_http_server_requests",
    "HTTP requests the gateway answered, by the IngestService RPC the route maps to (`none` for "
    "no route, health and the OpenAPI document) and the HTTP status.",
    ["rpc", "status"],
    registry=None,
)
HTTP_SECONDS = Histogram(
    "ragline_http_server_request_seconds",
    "Time the gateway took to answer each HTTP request (an event stream: until it ended).",
    ["rpc"],
    buckets=_DURATION_BUCKETS,
    registry=None,
)
DOCUMENTS_ACCEPTED = Counter(
    "ragline_documents_accepted",
    "Documents the gateway accepted (Ingest and IngestBatch).",
    ["tenant"],
    registry=None,
)
DOCUMENTS_REFUSED = Counter(
    "ragline_documents_refused",
    "Documents the gateway refused, by reason: invalid (a malformed field), too_large, "
    "queue_full (backpressure), unavailable (Redis or the broker did not answer), error.",
    ["tenant", "reason"],
    registry=None,
)
GATEWAY: tuple[Collector, ...] = (
    RPCS,
    RPC_SECONDS,
    HTTP_REQUESTS,
    HTTP_SECONDS,
    DOCUMENTS_ACCEPTED,
    DOCUMENTS_REFUSED,
)


def refusal_reason(exc: BaseException) -> str:
    """The `reason` label of a document refused with `exc`."""
    if isinstance(exc, InvalidArgument):
        return "invalid"
    if isinstance(exc, ResourceExhausted):
        return "too_large" if exc.retry_after_s is None else "queue_full"
    if isinstance(exc, TransientError):
        return "unavailable"
    return "error"


class TenantLabels:
    """The `tenant` label value of each tenant: its own id when listed, `other` otherwise."""

    def __init__(self, listed: str) -> None:
        self._listed = frozenset(t.strip() for t in listed.split(",") if t.strip())

    def __call__(self, tenant: str) -> str:
        return tenant if tenant in self._listed else OTHER_TENANT


# -- collectors read at scrape time ----------------------------------------------------------
class _ReadOnLoop:
    """Runs a coroutine on the service's event loop from the scrape thread, with a timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def read(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """`make()`'s result, or None (logged) when it failed or took too long."""

        async def run() -> Any:
            return await make()

        if self._loop.is_closed():
            return None  # the service has stopped; its last scrape reads nothing
        if _running_loop() is self._loop:
            # Waiting here would block the very loop that must answer: collect from a thread.
            log.warning("metrics: a scrape-time read was asked for on the event loop; skipped")
            return None
        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        try:
            return future.result(SCRAPE_READ_TIMEOUT_S)
        except Exception as exc:  # a scrape reports what it could read, and goes on
            future.cancel()
            log.warning("metrics: a scrape-time read failed: %s", str(exc) or type(exc).__name__)
            return None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class BacklogCollector(_ReadOnLoop):
    """A stage queue's backlog, read from the broker at scrape time (broker-wide: take
    `max by (stage)` over replicas)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stage: str,
        backlog: Callable[[], Awaitable[Backlog]],
    ) -> None:
        super().__init__(loop)
        self._stage = stage
        self._backlog = backlog

    def collect(self) -> Iterable[Metric]:
        found: Backlog | None = self.read(self._backlog)
        up = GaugeMetricFamily(
            "ragline_queue_up",
            "1 when the last scrape read the stage queue's backlog from the broker, else 0.",
            labels=["stage"],
        )
        up.add_metric([self._stage], 0.0 if found is None else 1.0)
        yield up
        if found is None:
            return
        messages = GaugeMetricFamily(
            "ragline_queue_messages",
            "Messages of a stage queue by state: waiting (not yet handed out), in_flight (held "
            "by a consumer, unacked), delayed (retries not yet due), dead_letter (in the "
            "stage's dead-letter queue). Broker-wide: aggregate replicas with max.",
            labels=["stage", "state"],
        )
        for state, value in (
            ("waiting", found.waiting),
            ("in_flight", found.in_flight),
            ("delayed", found.delayed),
            ("dead_letter", found.dead_letters),
        ):
            if value is not None:
                messages.add_metric([self._stage, state], float(value))
        yield messages
        if found.oldest_waiting_age_s is not None:
            age = GaugeMetricFamily(
                "ragline_queue_oldest_waiting_age_seconds",
                "Age of the oldest message waiting on a stage queue (0 when none waits).",
                labels=["stage"],
            )
            age.add_metric([self._stage], found.oldest_waiting_age_s)
            yield age


class StuckJobsCollector(_ReadOnLoop):
    """Unfinished jobs nothing has changed for RAGLINE_STUCK_AFTER_S, read from the job store at
    scrape time (store-wide: take `max` over gateway replicas)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, count: Callable[[], Awaitable[int]]
    ) -> None:
        super().__init__(loop)
        self._count = count

    def collect(self) -> Iterator[Metric]:
        found = self.read(self._count)
        if found is None:
            return
        yield GaugeMetricFamily(
            "ragline_jobs_stuck",
            "Unfinished jobs that nothing has changed for RAGLINE_STUCK_AFTER_S (see ragline "
            "doctor). Store-wide: aggregate gateway replicas with max.",
            value=float(found),
        )


# -- the server ------------------------------------------------------------------------------
def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of RAGLINE_METRICS_ADDRESS, or ConfigurationError saying what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigurationError(
            f"RAGLINE_METRICS_ADDRESS is {address!r}; use host:port, e.g. 0.0.0.0:9464 "
            "(or leave it empty to serve no metrics)"
        )
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass
class MetricsServer:
    """A running `/metrics` endpoint: its port and the thread that serves it."""

    host: str
    port: int
    registry: CollectorRegistry
    server: WSGIServer
    thread: threading.Thread

    def close(self) -> None:
        """Stops serving. Blocking (up to a scrape's read timeout): call it from a thread
        other than the event loop's, which a scrape in progress may be waiting for."""
        self.server.shutdown()
        self.server.server_close()


def start_metrics_server(
    address: str, service: str, collectors: Sequence[Collector]
) -> MetricsServer | None:
    """Serves `collectors` (and the process's own CPU, memory and GC figures) on
    http://`address`/metrics from a daemon thread; None when `address` is empty (metrics off).

    The thread only renders text: collectors that read Redis or the broker run their reads on
    the service's event loop (see BacklogCollector)."""
    if not address:
        return None
    host, port = parse_address(address)
    # No `_created` sample beside every counter and histogram: the process's start time
    # (process_start_time_seconds) says as much, at a fraction of the series.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, *collectors):
        registry.register(collector)
    try:
        server, thread = start_http_server(port, host, registry)
    except OSError as exc:
        raise ConfigurationError(
            f"the {service} cannot serve metrics on {address}: {exc}. Is another process "
            "using that port? Choose another RAGLINE_METRICS_ADDRESS, or leave it empty."
        ) from exc
    bound = int(server.server_address[1])
    log.info("%s metrics on http://%s:%d/metrics", service, host, bound)
    return MetricsServer(host, bound, registry, server, thread)
