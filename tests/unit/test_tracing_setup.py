"""Tracing's switch (OpenTelemetry's own variables, off by default) and its cost when off:
nothing started, nothing written into the envelopes."""

from __future__ import annotations

import pytest

from ragline import tracing
from ragline.errors import ConfigurationError
from ragline.stage.envelope import chunk_task, decode, embed_task, next_attempt
from ragline.v1 import queue_pb2

pytestmark = pytest.mark.unit

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, None),
        (ENDPOINT, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": " OTLP "}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, None),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, None),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "false"}, "otlp"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp"),
    ],
)
def test_the_standard_variables_choose_the_exporter(
    env: dict[str, str], exporter: str | None
) -> None:
    assert tracing.requested_exporter(env) == exporter


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER is 'zipkin'"),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, "one of otlp, console or none"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "over grpc only"),
        (
            {**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
            "'http/json'",
        ),
    ],
)
def test_what_ragline_cannot_export_is_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        tracing.requested_exporter(env)


def test_configure_does_nothing_when_off() -> None:
    assert tracing.configure_tracing("gateway", {}) is False
    assert not tracing.enabled()


def test_when_off_spans_do_nothing_and_envelopes_carry_no_context() -> None:
    span = tracing.start_span(
        "ragline.chunk", {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, {}
    )
    assert span is tracing.OFF
    assert span.carrier() == {} and span.trace_id == ""
    with span.step("ragline.chunk.parse"), tracing.batch_step([span], "ragline.embed.forward"):
        pass
    span.event("ragline.retry", {"ragline.attempt": 1})
    span.end()
    assert tracing.grpc_parent([("traceparent", "00-abc")]) == {}

    body = chunk_task(
        "job-1",
        queue_pb2.DocumentRef(document_id="doc"),
        content=b"hello",
        content_type="text/plain",
        chunk_size=100,
        chunk_overlap=10,
        embedding_model="m",
        trace_context=span.carrier(),
    )
    env = decode(body)
    assert not env.trace_context
    assert b"traceparent" not in body


def test_a_context_travels_to_the_next_task_and_stays_on_a_retry() -> None:
    context = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    chunked = decode(
        chunk_task(
            "job-1",
            queue_pb2.DocumentRef(document_id="doc"),
            content=b"hello",
            content_type="text/plain",
            chunk_size=100,
            chunk_overlap=10,
            embedding_model="m",
            trace_context=context,
        )
    )
    assert dict(chunked.trace_context) == context
    # The next stage's task carries the context its builder is given, not the one before.
    embed = decode(embed_task(chunked, [queue_pb2.TextChunk(text="hi")], {"traceparent": "x"}))
    assert dict(embed.trace_context) == {"traceparent": "x"}
    assert dict(decode(next_attempt(chunked)).trace_context) == context
