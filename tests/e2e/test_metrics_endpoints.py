"""Every service's /metrics after a real end-to-end run: it parses with prometheus-client's own
parser, its counters agree with what the jobs say was processed, a poisoned document shows as a
dead letter, and every query of the Grafana dashboard names a metric a service really exports."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ragline_client import Document, InvalidArgumentError, Job, JobState, RaglineClient
from tests.conftest import REDIS_URL
from tests.stack import STAGES, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.xdist_group(__name__)]

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ragline-dashboard.json"
GOOD_DOCUMENTS = 6
# A broker that cannot tell the oldest message's age (RabbitMQ) leaves that gauge out.
ONLY_SOME_BROKERS = {"ragline_queue_oldest_waiting_age_seconds": {"redis"}}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Run:
    broker: str
    jobs: list[Job]
    poisoned: Job
    # Each service's samples: (sample name, labels) -> value.
    samples: dict[str, Samples]


def parse(text: str) -> Samples:
    """The page's samples, through prometheus-client's own text parser (it raises on bad text)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 for a sample not exported."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_all(stack: Stack) -> dict[str, Samples]:
    return {name: parse(stack.scrape(name)) for name in STAGES}


def text_about(topic: str, paragraphs: int) -> str:
    return "\n\n".join(
        " ".join(
            f"Paragraph {i} on {topic}, sentence {j}, for the metrics test." for j in range(10)
        )
        for i in range(paragraphs)
    )


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """N good documents, one poisoned and one refused, through a stack of its own (fresh counters)."""
    broker = request.param
    stack = Stack(
        tmp_path_factory.mktemp(f"metrics-{broker}"), REDIS_URL, metrics=True, broker=broker
    )
    try:
        stack.start()
        tag = uuid.uuid4().hex[:6]
        with RaglineClient(stack.gateway, timeout=60) as client:
            docs = [
                Document(text_about(f"topic {i} {tag}", 2 + 3 * i), document_id=f"m-{i}-{tag}")
                for i in range(GOOD_DOCUMENTS)
            ]
            # A PDF the chunker can never parse: dead-lettered at once, as permanent.
            poison = Document(
                b"%PDF-1.7\nthis is not really a pdf",
                document_id=f"poison-{tag}.pdf",
                content_type="application/pdf",
            )
            accepted = client.ingest_batch([*docs, poison])
            with pytest.raises(InvalidArgumentError):
                client.ingest("x", document_id=f"refused-{tag}", content_type="image/x-unknown")
            finished = [client.wait(j.job_id, timeout=300) for j in accepted]
        # One call over HTTP/JSON too, for its own counter and the dashboard's HTTP panels.
        with urllib.request.urlopen(f"{stack.http_url}/v1/jobs/{accepted[0].job_id}") as answer:
            assert answer.status == 200
        jobs, poisoned = finished[:-1], finished[-1]
        assert [j.state for j in jobs] == [JobState.COMPLETED] * GOOD_DOCUMENTS, stack.logs()
        assert poisoned.state == JobState.FAILED, poisoned
        expected = sum(j.progress.chunks_total for j in jobs)
        # The last counters move just after the job reads completed: scrape until they settle.
        deadline = time.monotonic() + 20
        samples = scrape_all(stack)
        while time.monotonic() < deadline and not (
            value(samples["indexer"], "ragline_indexer_chunks_total") == expected
            and value(samples["indexer"], "ragline_job_duration_seconds_count", tenant="default")
            == GOOD_DOCUMENTS
            and value(samples["chunker"], "ragline_tasks_total", stage="chunk", outcome="ok")
            == GOOD_DOCUMENTS
        ):
            time.sleep(0.3)
            samples = scrape_all(stack)
        yield Run(broker, jobs, poisoned, samples)
    finally:
        stack.stop_all()


def test_counters_match_what_the_jobs_say_was_processed(run: Run) -> None:
    chunks = sum(j.progress.chunks_total for j in run.jobs)
    assert chunks > GOOD_DOCUMENTS  # the longer documents make several chunks
    gateway, chunker, embedder, indexer = (run.samples[s] for s in STAGES[::-1])
    assert value(embedder, "ragline_embedder_chunks_total") == chunks
    assert value(indexer, "ragline_indexer_chunks_total") == chunks
    assert value(indexer, "ragline_job_duration_seconds_count", tenant="default") == GOOD_DOCUMENTS
    slowest = max(
        j.finish_time - j.create_time for j in run.jobs if j.finish_time and j.create_time
    )
    assert value(indexer, "ragline_job_duration_seconds_sum", tenant="default") > 0
    assert value(indexer, "ragline_job_duration_seconds_sum", tenant="default") <= (
        GOOD_DOCUMENTS * slowest.total_seconds() + 1
    )

    # Every good document is one chunk task; the poisoned one is dead-lettered, never retried.
    assert value(chunker, "ragline_tasks_total", stage="chunk", outcome="ok") == GOOD_DOCUMENTS
    assert value(chunker, "ragline_tasks_total", stage="chunk", outcome="dead_lettered") == 1
    assert value(chunker, "ragline_tasks_total", stage="chunk", outcome="retried") == 0
    for stage, samples in (("embed", embedder), ("index", indexer)):
        assert value(samples, "ragline_tasks_total", stage=stage, outcome="ok") >= GOOD_DOCUMENTS
        assert value(samples, "ragline_tasks_total", stage=stage, outcome="dead_lettered") == 0
        handled = value(samples, "ragline_stage_batch_tasks_sum", stage=stage)
        assert handled == value(samples, "ragline_tasks_total", stage=stage, outcome="ok")
        assert value(samples, "ragline_stage_handle_duration_seconds_count", stage=stage) >= 1

    # The backlog, read from the broker: the dead letter, and nothing left waiting.
    assert value(chunker, "ragline_queue_messages", stage="chunk", state="dead_letter") == 1
    for stage, samples in (("chunk", chunker), ("embed", embedder), ("index", indexer)):
        assert value(samples, "ragline_queue_up", stage=stage) == 1
        assert value(samples, "ragline_queue_messages", stage=stage, state="waiting") == 0
        assert value(samples, "ragline_queue_messages", stage=stage, state="delayed") == 0
        age = ("ragline_queue_oldest_waiting_age_seconds", frozenset({("stage", stage)}))
        assert samples.get(age) == (0.0 if run.broker == "redis" else None)
    for stage in ("embed", "index"):
        samples = run.samples["embedder" if stage == "embed" else "indexer"]
        assert value(samples, "ragline_queue_messages", stage=stage, state="dead_letter") == 0

    # The embedder: tokens, padding no less than them, model batches, where the model runs.
    tokens = value(embedder, "ragline_embedder_tokens_total")
    assert tokens >= chunks
    assert value(embedder, "ragline_embedder_padded_tokens_total") >= tokens
    assert value(embedder, "ragline_embedder_model_batch_duration_seconds_count") >= 1
    (info,) = [k for k in embedder if k[0] == "ragline_embedder_model_info"]
    assert dict(info[1])["device"].split(":")[0] in ("cpu", "cuda")
    assert dict(info[1])["precision"] in ("fp32", "bf16", "fp16")

    # The gateway: the calls by their final status, the documents, the stuck jobs.
    service = "ragline.v1.IngestService"
    rpc = "ragline_grpc_server_handled_total"
    ok = {"grpc_service": service, "grpc_code": "OK"}
    assert value(gateway, rpc, grpc_method="IngestBatch", **ok) == 1
    assert value(
        gateway, rpc, grpc_service=service, grpc_method="Ingest", grpc_code="INVALID_ARGUMENT"
    ) == (1)
    # client.wait watches each job; a watch it ends itself reads CANCELLED on the server.
    watches = [
        v
        for (name, labels), v in gateway.items()
        if name == rpc and ("grpc_method", "WatchJob") in labels
    ]
    assert sum(watches) >= len(run.jobs) + 1
    assert value(gateway, "ragline_documents_accepted_total", tenant="default") == (
        GOOD_DOCUMENTS + 1
    )
    assert (
        value(gateway, "ragline_documents_refused_total", tenant="default", reason="invalid") == 1
    )
    assert value(gateway, "ragline_jobs_stuck") == 0
    assert value(gateway, "ragline_http_server_requests_total", rpc="GetJob", status="200") == 1
    # Each service exports its own metrics only.
    assert not [k for k in gateway if k[0].startswith(("ragline_tasks", "ragline_embedder"))]
    assert not [k for k in chunker if k[0].startswith(("ragline_embedder", "ragline_grpc"))]


def test_every_dashboard_query_names_a_metric_the_services_export(run: Run) -> None:
    exported = {name for samples in run.samples.values() for name, _ in samples}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    named = {m for e in exprs for m in re.findall(r"\bragline_[a-z_]+", e)}
    assert len(named) >= 12
    missing = {m for m in named - exported if run.broker in ONLY_SOME_BROKERS.get(m, {run.broker})}
    assert not missing, f"the dashboard queries metrics no service exports: {sorted(missing)}"
