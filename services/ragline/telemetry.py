"""Logging set-up shared by every ragline process: one readable line per event naming the service
(`text`, for a terminal) or one JSON object per line (`json`, for a log pipeline).

What a line is about (job, document, stage, trace) is carried by a context variable that the
code handling a job sets once (`log_context`), so every line logged meanwhile, by ragline or a
library, carries it without being passed by hand; asyncio tasks inherit it from the code that
made them. Log lines name ids and errors, never a document's content or a caller's key.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

# The fields JSON lines may carry besides time, level, service, logger and message.
CONTEXT_FIELDS = ("job_id", "document_id", "stage", "trace_id")

_NONE: Mapping[str, str] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "ragline_log_context", default=_NONE
)


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Adds `fields` (empty values left out) to every line logged inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str) -> None:
    """Adds `fields` to every later line of the current asyncio task (and the tasks it makes)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})


def current_context() -> dict[str, str]:
    return dict(_context.get())


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, service, logger, message, the
    log context's fields, and the error's type and traceback when there is one."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
            **_context.get(),
        }
        if "trace_id" not in line:
            trace_id = _current_trace_id()
            if trace_id:
                line["trace_id"] = trace_id
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _current_trace_id() -> str:
    """The current span's trace id, when tracing is on and a span is current."""
    if "opentelemetry.trace" not in sys.modules:
        return ""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def configure_logging(service: str, level: str = "INFO", log_format: str = "text") -> None:
    """Logs to stderr: `time LEVEL [service] message` for "text", JSON lines for "json"."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)-7s [{service}] %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Python's warnings would otherwise print bare lines to stderr among the JSON ones.
    logging.captureWarnings(log_format == "json")
    # Libraries that chat at INFO about every connection.
    for noisy in ("httpx", "urllib3", "pymilvus", "milvus_lite", "aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
