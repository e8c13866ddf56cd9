"""Log lines: JSON objects with the service and the job's ids from the log context, or the
readable text line; RAGLINE_LOG_FORMAT chooses."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from ragline.config import Settings
from ragline.errors import ConfigurationError
from ragline.telemetry import JsonFormatter, bind, configure_logging, current_context, log_context

pytestmark = pytest.mark.unit


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("embedder"))
    logger = logging.getLogger("ragline.test_log_format")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield out
    logger.removeHandler(handler)


def records(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_context_of_its_job(lines: io.StringIO) -> None:
    log = logging.getLogger("ragline.test_log_format")
    log.info("before")
    with log_context(job_id="j1", document_id="d1", stage="embed", trace_id=""):
        log.warning("attempt %d failed", 1)
        with log_context(job_id="j2"):
            log.info("inner")
    log.info("after")
    before, failed, inner, after = records(lines)
    assert before.keys() == {"time", "level", "service", "logger", "message"}
    assert before["service"] == "embedder" and before["time"].endswith("Z")
    assert failed["message"] == "attempt 1 failed" and failed["level"] == "WARNING"
    assert (failed["job_id"], failed["document_id"], failed["stage"]) == ("j1", "d1", "embed")
    assert "trace_id" not in failed  # empty values are left out
    assert inner["job_id"] == "j2" and inner["document_id"] == "d1"
    assert "job_id" not in after


def test_an_error_line_carries_its_traceback(lines: io.StringIO) -> None:
    log = logging.getLogger("ragline.test_log_format")
    try:
        raise ValueError("bad chunk")
    except ValueError:
        log.exception("job failed")
    (line,) = records(lines)
    assert "ValueError: bad chunk" in line["error"]


async def test_asyncio_tasks_inherit_the_context_they_were_made_in() -> None:
    async def stage_loop() -> dict[str, str]:
        bind(stage="index")
        inner = asyncio.create_task(asyncio.sleep(0, current_context()))
        return await inner

    assert await asyncio.create_task(stage_loop()) == {"stage": "index"}
    assert current_context() == {}


def test_the_format_is_a_setting_checked_by_name() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"RAGLINE_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigurationError, match="RAGLINE_LOG_FORMAT is 'xml'"):
        Settings.from_env({"RAGLINE_LOG_FORMAT": "xml"})


def test_configure_logging_installs_the_chosen_formatter() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging("chunker", "INFO", "json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging("chunker", "INFO", "text")
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        logging.captureWarnings(False)
