"""Observability against the whole stack: one OpenTelemetry trace per job, exported over real
OTLP/gRPC to a receiver the test runs; JSON log lines carrying the job's ids and never its
content; and gRPC reflection on every service.

One stack runs the scenario once (module fixture): it starts with tracing and JSON logs on,
lists each service by reflection, ingests two documents (one that the embedder fails once, so
it retries) under a caller's trace context, waits for both jobs, then stops the stack with
SIGTERM. The indexer's batch exporter never exports on its own schedule, so its spans arrive
only because a stopping service flushes what it holds.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from ragline_client import JobState, RaglineClient
from tests.conftest import REDIS_URL
from tests.stack import STAGES, Stack, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.xdist_group(__name__)]

HEALTH = "grpc.health.v1.Health"
OWN_SERVICES = {
    "gateway": "ragline.v1.IngestService",
    "chunker": "ragline.v1.ChunkerService",
    "embedder": "ragline.v1.EmbedderService",
    "indexer": "ragline.v1.IndexerService",
}
# The caller's own trace, which the gateway must continue.
CALLER_TRACE_ID = uuid.uuid4().hex
CALLER_SPAN_ID = uuid.uuid4().hex[:16]
FLAKY = "FLAKYEMBED"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    span: trace_pb2.Span

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()

    def attribute(self, key: str) -> object:
        for kv in self.span.attributes:
            if kv.key == key:
                value = kv.value
                return getattr(value, value.WhichOneof("value"))
        return None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(ReceivedSpan(service, s) for s in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@dataclass
class Run:
    receiver: Receiver
    stack: Stack
    logs: dict[str, list[str]] = field(default_factory=dict)
    reflected: dict[str, set[str]] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)  # "plain" / "flaky" -> job id
    markers: dict[str, str] = field(default_factory=dict)

    def trace_of(self, job_id: str) -> list[ReceivedSpan]:
        traces = {
            s.trace_id for s in self.receiver.spans if s.attribute("ragline.job_id") == job_id
        }
        assert len(traces) == 1, f"job {job_id} is in {len(traces)} traces"
        (trace_id,) = traces
        return [s for s in self.receiver.spans if s.trace_id == trace_id]


def reflected_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        return set(ProtoReflectionDescriptorDatabase(channel).get_services())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    workdir = tmp_path_factory.mktemp("traced")
    stack = Stack(
        workdir,
        REDIS_URL,
        log_format="json",
        faults=f"embed:transient:{FLAKY}",
        retry_initial_delay_s="0.2",
        retry_jitter="0",
    )
    stack.env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
    )
    result = Run(receiver, stack)
    try:
        for stage in STAGES:
            env = stack.env
            if stage == "indexer":
                # Exports only when its queue fills (512 spans) or the process stops.
                env = {**env, "OTEL_BSP_SCHEDULE_DELAY": "3600000"}
            stack.launch(stage, stage, env)
        stack.wait_serving(STAGES, 180)
        result.reflected = {s: reflected_services(stack.addresses[s]) for s in STAGES}
        # The plain document comes with a caller's trace context; the flaky one without, so
        # its job starts a trace of its own.
        traceparent = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"
        for kind, metadata in (("plain", [("traceparent", traceparent)]), ("flaky", [])):
            with RaglineClient(stack.gateway, timeout=60, metadata=metadata) as c:
                marker = f"SECRETCONTENT{uuid.uuid4().hex}"
                result.markers[kind] = marker
                flaky = f" {FLAKY}" if kind == "flaky" else ""
                text = f"A document about lighthouses and {marker}{flaky}.\n\n" + " ".join(
                    f"Lighthouse keeper note {i} on the {marker} coast." for i in range(40)
                )
                job = c.ingest(text, document_id=f"traced-{kind}-{uuid.uuid4().hex[:6]}")
                result.jobs[kind] = job.job_id
        with RaglineClient(stack.gateway, timeout=60) as c:
            for job_id in result.jobs.values():
                done = c.wait(job_id, timeout=240)
                assert done.state == JobState.COMPLETED, f"{done}\n{stack.logs()}"
    finally:
        stack.stop_all()
        server.stop(1)
    result.logs = {s: Path(stack.log_path(s)).read_text().splitlines() for s in STAGES}
    yield result


def by_name(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = by_name(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name}: {sorted(s.name for s in spans)}"
    return found[0]


def test_one_job_is_one_trace_through_all_four_services_in_pipeline_order(run: Run) -> None:
    spans = run.trace_of(run.jobs["plain"])
    # The gateway continued the caller's trace.
    assert {s.trace_id for s in spans} == {CALLER_TRACE_ID}
    accept = one(spans, "ragline.gateway.accept")
    chunk = one(spans, "ragline.chunk")
    embed = by_name(spans, "ragline.embed")
    index = by_name(spans, "ragline.index")
    assert accept.parent_id == CALLER_SPAN_ID
    assert chunk.parent_id == accept.span_id
    assert embed and all(e.parent_id == chunk.span_id for e in embed)
    assert index and all(i.parent_id in {e.span_id for e in embed} for i in index)
    assert accept.service == "ragline-gateway"
    assert chunk.service == "ragline-chunker"
    assert {e.service for e in embed} == {"ragline-embedder"}
    assert {i.service for i in index} == {"ragline-indexer"}
    # Each stage's steps sit under its own span.
    assert one(spans, "ragline.chunk.parse").parent_id == chunk.span_id
    assert one(spans, "ragline.chunk.split").parent_id == chunk.span_id
    embed_ids = {e.span_id for e in embed}
    assert {s.parent_id for s in by_name(spans, "ragline.embed.batch_wait")} <= embed_ids
    forward = by_name(spans, "ragline.embed.forward")
    assert forward and {s.parent_id for s in forward} <= embed_ids
    index_ids = {i.span_id for i in index}
    assert by_name(spans, "ragline.index.upsert")
    assert {s.parent_id for s in by_name(spans, "ragline.index.upsert")} <= index_ids
    # Only the last chunk's index task switches the version; the indexer's spans arrived only
    # by the flush on shutdown.
    assert one(spans, "ragline.index.version_switch").parent_id in index_ids
    # Every span of the trace is this job's, never the other job's from the same batch.
    assert {s.attribute("ragline.job_id") for s in spans} - {None} == {run.jobs["plain"]}


def test_a_retried_task_shows_its_retry_in_its_trace(run: Run) -> None:
    spans = run.trace_of(run.jobs["flaky"])
    assert {s.trace_id for s in spans} != {CALLER_TRACE_ID}
    # No caller context: the accept span starts the job's trace.
    assert one(spans, "ragline.gateway.accept").parent_id == ""
    embed = by_name(spans, "ragline.embed")
    attempts = sorted(int(str(s.attribute("ragline.attempt"))) for s in embed)
    assert attempts[0] == 1 and 2 in attempts
    failed = [s for s in embed if s.attribute("ragline.attempt") == 1]
    events = [e for s in failed for e in s.span.events if e.name == "ragline.retry"]
    assert events, "the failed attempt's span has no retry event"
    assert failed[0].span.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    # The retry is a sibling of the attempt it repeats, under the same chunk span.
    chunk = one(spans, "ragline.chunk")
    assert {s.parent_id for s in embed} == {chunk.span_id}
    assert by_name(spans, "ragline.index")


def test_every_log_line_is_json_and_lines_about_a_job_carry_its_ids(run: Run) -> None:
    about_jobs = []
    for stage, lines in run.logs.items():
        assert lines, f"{stage} logged nothing"
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                pytest.fail(f"{stage} logged a line that is not JSON: {line!r}")
            assert {"time", "level", "service", "message"} <= record.keys(), line
            assert record["service"] == stage
            if any(job_id in record["message"] for job_id in run.jobs.values()):
                about_jobs.append(record)
    retry = [r for r in about_jobs if "retrying" in r["message"]]
    assert retry, "the embedder's retry was not logged"
    trace_of = {job_id: run.trace_of(job_id)[0].trace_id for job_id in run.jobs.values()}
    for record in about_jobs:
        assert record.get("job_id") in run.jobs.values(), record
        assert record["job_id"] in record["message"]
        assert record.get("trace_id") == trace_of[record["job_id"]], record
        assert record.get("document_id", "").startswith("traced-"), record
    assert {r.get("stage") for r in retry} == {"embed"}


def test_no_log_line_holds_a_documents_content(run: Run) -> None:
    for stage, lines in run.logs.items():
        for marker in run.markers.values():
            leaked = [line for line in lines if marker in line]
            assert not leaked, f"{stage} logged document content: {leaked[:2]}"


def test_reflection_lists_each_services_api_and_health(run: Run) -> None:
    for stage, own in OWN_SERVICES.items():
        assert {own, HEALTH} <= run.reflected[stage], (stage, run.reflected[stage])
    assert "ragline.v1.IngestService" not in run.reflected["embedder"]
