"""The runner's spans, in memory: in a batch that mixes jobs each task's span joins its own
job's trace, a retry and a dead letter are events on the failed attempt, the retried attempt
sits beside it, and a step shared by a batch appears in every task's trace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ragline import tracing
from ragline.broker.base import Delivery
from ragline.broker.memory import MemoryBroker, MemoryServer
from ragline.errors import PermanentTaskError, TransientError
from ragline.stage.envelope import new_envelope
from ragline.stage.runner import StageRunner
from ragline.v1 import queue_pb2
from tests.runner_tasks import FAST, FakeHandler
from tests.unit.memory_jobs import MemoryJobs, MemorySoloRuns

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.shutdown_tracing()


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    b = MemoryBroker(MemoryServer(), consumer_name="spans-test")
    await b.connect()
    yield b
    await b.close()


def parent_context(n: int) -> tuple[dict[str, str], str, str]:
    """A distinct upstream span's W3C context, with its trace and span ids."""
    trace_id, span_id = f"{n:032x}", f"{n:016x}"
    return {"traceparent": f"00-{trace_id}-{span_id}-01"}, trace_id, span_id


def embed_body(job_id: str, context: dict[str, str]) -> bytes:
    env = new_envelope(job_id, trace_context=context)
    env.embed.CopyFrom(
        queue_pb2.EmbedTask(
            document=queue_pb2.DocumentRef(document_id=f"doc-{job_id}", document_version=1),
            chunks=[queue_pb2.TextChunk(chunk_index=0, text="hello", token_count=1)],
        )
    )
    return env.SerializeToString()


async def read(broker: MemoryBroker, count: int) -> list[Delivery]:
    got: list[Delivery] = []
    while len(got) < count:
        got += await broker.read("embed", count - len(got), 2.0)
    return got


def stage_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == "ragline.embed"]


def ids(span: ReadableSpan) -> tuple[str, str]:
    """(trace id, parent span id) in hex."""
    assert span.parent is not None
    return format(span.context.trace_id, "032x"), format(span.parent.span_id, "016x")


async def test_each_task_of_a_mixed_batch_joins_its_own_jobs_trace_and_a_retry_is_an_event(
    broker: MemoryBroker, exported: InMemorySpanExporter
) -> None:
    jobs = MemoryJobs()
    a, b = jobs.create(), jobs.create()
    (ctx_a, trace_a, parent_a), (ctx_b, trace_b, parent_b) = parent_context(1), parent_context(2)
    handler = FakeHandler()
    handler.failures[b] = TransientError("the GPU hiccuped")
    runner = StageRunner(handler, broker, jobs, solo_runs=MemorySoloRuns(), policy=FAST)
    await broker.publish("embed", [embed_body(a, ctx_a), embed_body(b, ctx_b)])
    await runner.process(await read(broker, 2))

    by_job = {s.attributes["ragline.job_id"]: s for s in stage_spans(exported)}
    assert ids(by_job[a]) == (trace_a, parent_a)
    assert ids(by_job[b]) == (trace_b, parent_b)
    assert by_job[a].attributes["ragline.document_id"] == f"doc-{a}"
    assert by_job[a].status.status_code is StatusCode.UNSET and not by_job[a].events
    failed = by_job[b]
    assert failed.status.status_code is StatusCode.ERROR
    (event,) = failed.events
    assert event.name == "ragline.retry"
    assert event.attributes["ragline.attempt"] == 1
    assert event.attributes["exception.message"] == "the GPU hiccuped"

    # The retried attempt is the failed one's sibling: the same trace, the same parent.
    exported.clear()
    del handler.failures[b]
    await runner.process(await read(broker, 1))
    (again,) = stage_spans(exported)
    assert ids(again) == (trace_b, parent_b)
    assert again.attributes["ragline.attempt"] == 2
    assert again.context.span_id != failed.context.span_id


async def test_a_dead_letter_is_an_event_on_the_attempt_that_gave_up(
    broker: MemoryBroker, exported: InMemorySpanExporter
) -> None:
    jobs = MemoryJobs()
    job = jobs.create()
    handler = FakeHandler()
    handler.failures[job] = PermanentTaskError("the chunk is not text")
    runner = StageRunner(handler, broker, jobs, solo_runs=MemorySoloRuns(), policy=FAST)
    await broker.publish("embed", [embed_body(job, parent_context(3)[0])])
    await runner.process(await read(broker, 1))
    (span,) = stage_spans(exported)
    assert [e.name for e in span.events] == ["ragline.dead_letter"]
    assert span.events[0].attributes["ragline.dead_letter_queue"] == "embed"
    assert span.status.status_code is StatusCode.ERROR


def test_a_batch_step_is_recorded_in_every_tasks_trace_with_the_same_times(
    exported: InMemorySpanExporter,
) -> None:
    spans = [
        tracing.start_span("ragline.embed", parent_context(n)[0], {"ragline.job_id": f"j{n}"})
        for n in (4, 5)
    ]
    with tracing.batch_step(spans, "ragline.embed.forward", {"ragline.batch_chunks": 7}):
        pass
    for span in spans:
        span.end()
    steps = [s for s in exported.get_finished_spans() if s.name == "ragline.embed.forward"]
    assert len(steps) == 2
    assert {format(s.context.trace_id, "032x") for s in steps} == {
        parent_context(4)[1],
        parent_context(5)[1],
    }
    assert len({(s.start_time, s.end_time) for s in steps}) == 1
    assert all(s.attributes["ragline.batch_tasks"] == 2 for s in steps)
