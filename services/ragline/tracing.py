"""OpenTelemetry tracing: one trace per job, carried from the gateway through every stage.

Off unless the standard `OTEL_*` variables ask for it (see `requested_exporter`); while off no
exporter exists, every span below is `OFF` (a constant doing nothing) and no context is
serialised into the queue envelopes, so tracing costs a branch per task.

The span model, and why. A job is one trace: the gateway's accept span continues the caller's
`traceparent` (or starts the trace), and each task envelope carries the context of the span that
published it (TaskEnvelope.trace_context), so a stage's span for a task is a child of the
previous stage's span for the same job. Stages work in batches that mix many jobs (one embed
batch holds chunks of dozens of documents), so a batch is never a span of its own, which would
belong to one trace only: each task gets its own span, parented on its own task's context, and
a step that a batch does at once (the model's forward pass, the vector upsert) is recorded as
one span per task with the same start and end (`batch_step`), each in its own job's trace and
saying how large the batch was. A retry or dead letter is an event on the failed attempt's span;
the retried attempt carries the same parent context, so it sits beside its failed attempt.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ragline.errors import ConfigurationError

log = logging.getLogger(__name__)

_EXPORTERS = ("otlp", "console", "none")
# Attribute values a span may hold (OpenTelemetry's AttributeValue, flattened to what we use).
Attributes = Mapping[str, str | int | float | bool]

_tracer: trace.Tracer | None = None
_provider: Any = None  # the SDK's TracerProvider, imported only when tracing is on


def requested_exporter(env: Mapping[str, str]) -> str | None:
    """The span exporter the standard variables ask for: "otlp", "console", or None (off).

    As OpenTelemetry's SDKs read them: OTEL_SDK_DISABLED=true turns everything off;
    OTEL_TRACES_EXPORTER names the exporter ("none" is off). Unlike the SDKs, whose default
    exporter is otlp, ragline stays off by default, so a laptop never tries to reach a
    collector that is not there: with OTEL_TRACES_EXPORTER unset, tracing is on (otlp) only
    when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or _TRACES_ENDPOINT).
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = ["otlp"] if endpoint else ["none"]
    unknown = [n for n in names if n not in _EXPORTERS]
    if unknown or len(names) > 1:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER is {env['OTEL_TRACES_EXPORTER']!r}; ragline exports spans "
            "to one of otlp, console or none."
        )
    if names[0] == "none":
        return None
    if names[0] == "otlp":
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
        )
        if protocol != "grpc":
            raise ConfigurationError(
                f"the OTLP protocol is {protocol!r}; ragline exports OTLP over grpc only. Unset "
                "OTEL_EXPORTER_OTLP_PROTOCOL or point it at a collector's gRPC port (4317)."
            )
    return names[0]


def configure_tracing(service: str, env: Mapping[str, str]) -> bool:
    """Sets up the tracer for a ragline service when `env` asks for it; returns whether it did.

    The exporter, the batch processor (OTEL_BSP_*), the sampler (OTEL_TRACES_SAMPLER) and the
    resource (OTEL_RESOURCE_ATTRIBUTES) read their own standard variables. The service is named
    `ragline-<service>` unless OTEL_SERVICE_NAME names it.
    """
    exporter_name = requested_exporter(env)
    if exporter_name is None:
        return False
    # Imported here: a process with tracing off never loads the SDK or the exporter.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"ragline-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter: SpanExporter
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    use_tracer_provider(provider)
    log.info("tracing on: spans export by %s", exporter_name)
    return True


def use_tracer_provider(provider: Any) -> None:
    """Traces into `provider`, an SDK TracerProvider (configure_tracing's, or a test's with an
    in-memory exporter); `shutdown_tracing` ends it."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("ragline")


def shutdown_tracing() -> None:
    """Exports the spans still buffered and stops the exporter; nothing when tracing is off."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


class TraceSpan:
    """One span of a job's trace (a task's at one stage, or the gateway's accept), or nothing
    when tracing is off (`OFF`). Ends once, however often `end` is called."""

    __slots__ = ("_ended", "_span")

    def __init__(self, span: Span | None) -> None:
        self._span = span
        self._ended = False

    @property
    def trace_id(self) -> str:
        """The trace's id in hex, as logs and tracing UIs show it; empty when off."""
        if self._span is None:
            return ""
        return format(self._span.get_span_context().trace_id, "032x")

    def carrier(self) -> dict[str, str]:
        """This span's context as W3C headers, for the next task's envelope; {} when off."""
        out: dict[str, str] = {}
        if self._span is not None:
            propagate.inject(out, context=trace.set_span_in_context(self._span))
        return out

    def set(self, key: str, value: str | int | float | bool) -> None:
        if self._span is not None:
            self._span.set_attribute(key, value)

    def event(self, name: str, attributes: Attributes) -> None:
        if self._span is not None:
            self._span.add_event(name, attributes)

    def fail(self, exc: BaseException) -> None:
        """Marks the span failed, naming the error (no traceback: it may quote a document)."""
        if self._span is not None:
            self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))

    @contextlib.contextmanager
    def step(self, name: str, attributes: Attributes | None = None) -> Iterator[None]:
        """A child span around a step of this task's own work; nothing when off."""
        if self._span is None or _tracer is None:
            yield
            return
        parent = trace.set_span_in_context(self._span)
        with _tracer.start_as_current_span(
            name, context=parent, attributes=attributes, record_exception=False
        ):
            yield

    def record(
        self, name: str, start_ns: int, end_ns: int, attributes: Attributes, error: str | None
    ) -> None:
        """A child span that has already happened (a step shared with other tasks)."""
        if self._span is None or _tracer is None:
            return
        child = _tracer.start_span(
            name,
            context=trace.set_span_in_context(self._span),
            attributes=attributes,
            start_time=start_ns,
        )
        if error is not None:
            child.set_status(Status(StatusCode.ERROR, error))
        child.end(end_time=end_ns)

    def end(self) -> None:
        if self._span is not None and not self._ended:
            self._ended = True
            self._span.end()


OFF = TraceSpan(None)


def start_span(
    name: str,
    parent: Mapping[str, str],
    attributes: Attributes,
    *,
    server: bool = False,
) -> TraceSpan:
    """A span continuing the W3C context in `parent` (a new trace when it holds none): a
    consumer's (a stage's task), or with `server` an RPC's; `OFF` when tracing is off. The
    caller ends it."""
    if _tracer is None:
        return OFF
    context = propagate.extract(parent) if parent else None
    kind = SpanKind.SERVER if server else SpanKind.CONSUMER
    return TraceSpan(_tracer.start_span(name, context=context, kind=kind, attributes=attributes))


def grpc_parent(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """The W3C headers among an incoming call's metadata, so the gateway continues the caller's
    trace; {} when tracing is off."""
    if _tracer is None or not metadata:
        return {}
    wanted = propagate.get_global_textmap().fields
    return {k: v for k, v in metadata if k in wanted and isinstance(v, str)}


@contextlib.contextmanager
def batch_step(
    spans: Sequence[TraceSpan], name: str, attributes: Attributes | None = None
) -> Iterator[None]:
    """A step done once for a whole batch (the forward pass, the upsert), recorded as one child
    span per task, each in its own job's trace, all with the step's start and end."""
    if _tracer is None:
        yield
        return
    start = time.time_ns()
    error: str | None = None
    try:
        yield
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        end = time.time_ns()
        attrs = {"ragline.batch_tasks": len(spans), **(attributes or {})}
        for span in spans:
            span.record(name, start, end, attrs, error)
