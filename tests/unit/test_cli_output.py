"""What the client commands print: search hits, jobs, progress, errors and exit codes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from ragline.cli import client_commands
from ragline.cli.client_commands import PlainProgress, excerpt, format_hits, format_job
from ragline.cli.main import main
from ragline_client import (
    Document,
    DocumentInfo,
    FailedPreconditionError,
    Hit,
    Job,
    JobProgress,
    JobState,
    Metadata,
    UnavailableError,
)

pytestmark = pytest.mark.unit

HITS = [
    Hit(
        "guide/intro.md",
        3,
        "Ragline turns documents\n\ninto   searchable vectors " + "and more " * 30,
        0.87654,
        Metadata(
            uploaded_by="ana",
            upload_time=datetime(2024, 1, 2, tzinfo=UTC),
            original_filename="intro.md",
            attributes={"lang": "en"},
        ),
        2,
    ),
    Hit("b.txt", 0, "short", -0.1, Metadata(), 1),
]


def _job(state: JobState, *, indexed: int = 0, error: str = "", stage: str = "") -> Job:
    return Job("j-1", "doc.md", 1, state, JobProgress(4, 4, indexed), error, stage, 1)


class FakeClient:
    """Stands in for RaglineClient: canned answers, and every call recorded."""

    calls: list[tuple[str, Any]]
    options: dict[str, Any]
    job_states: list[Job]
    error: Exception | None

    def __init__(self, address: str, **options: Any) -> None:
        FakeClient.calls.append(("connect", address))
        FakeClient.options = options

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        pass

    def _record(self, name: str, value: Any) -> None:
        FakeClient.calls.append((name, value))
        if FakeClient.error is not None:
            raise FakeClient.error

    def search(self, query: str, *, top_k: int, document_ids: Sequence[str]) -> list[Hit]:
        self._record("search", (query, top_k, list(document_ids)))
        return HITS

    def get_job(self, job_id: str) -> Job:
        self._record("get_job", job_id)
        return FakeClient.job_states.pop(0)

    def watch(self, job_id: str) -> Iterator[Job]:
        self._record("watch", job_id)
        yield from FakeClient.job_states

    def cancel(self, job_id: str) -> Job:
        self._record("cancel", job_id)
        return FakeClient.job_states.pop(0)

    def get_document(self, document_id: str) -> DocumentInfo:
        self._record("get_document", document_id)
        return DocumentInfo(document_id, 0, 1, 0)

    def delete(self, document_id: str) -> int:
        self._record("delete", document_id)
        return 12

    def ingest_batch(self, documents: Sequence[Document]) -> list[Job]:
        self._record("ingest_batch", len(documents))
        return [Job(f"j-{d.document_id}", d.document_id, 1, JobState.ACCEPTED) for d in documents]


@pytest.fixture(autouse=True)
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    monkeypatch.setattr(client_commands, "RaglineClient", FakeClient)
    monkeypatch.setattr(client_commands, "POLL_INTERVAL_S", 0)
    monkeypatch.delenv("RAGLINE_GATEWAY", raising=False)
    monkeypatch.delenv("RAGLINE_API_KEY", raising=False)
    FakeClient.calls, FakeClient.job_states, FakeClient.error = [], [], None
    FakeClient.options = {}
    return FakeClient


def test_the_api_key_comes_from_the_flag_else_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["delete", "d"]) == 0
    assert FakeClient.options == {"api_key": None}
    monkeypatch.setenv("RAGLINE_API_KEY", "rl_from_env")
    assert main(["delete", "d"]) == 0
    assert FakeClient.options == {"api_key": "rl_from_env"}
    for argv in (
        ["--api-key", "rl_from_flag", "delete", "d"],
        ["delete", "d", "--api-key", "rl_from_flag"],
    ):
        assert main(argv) == 0
        assert FakeClient.options == {"api_key": "rl_from_flag"}
    capsys.readouterr()


def test_search_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "search",
        "what is ragline",
        "--json",
        "--top-k",
        "5",
        "--document-id",
        "a",
        "--document-id",
        "b",
    ]
    assert main(argv) == 0
    assert FakeClient.calls == [
        ("connect", "127.0.0.1:50051"),
        ("search", ("what is ragline", 5, ["a", "b"])),
    ]
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and len(data) == 2
    first = data[0]
    assert set(first) == {
        "document_id",
        "chunk_index",
        "score",
        "text",
        "metadata",
        "document_version",
    }
    assert (first["document_id"], first["chunk_index"], first["score"]) == (
        "guide/intro.md",
        3,
        0.87654,
    )
    assert first["text"] == HITS[0].text
    assert first["document_version"] == 2
    assert first["metadata"] == {
        "uploaded_by": "ana",
        "upload_time": "2024-01-02T00:00:00+00:00",
        "original_filename": "intro.md",
        "attributes": {"lang": "en"},
    }


def test_search_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--gateway", "gw:9", "search", "q"]) == 0
    assert FakeClient.calls[0] == ("connect", "gw:9")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1. 0.877  guide/intro.md  (chunk 3)"
    assert lines[1].startswith("   Ragline turns documents into searchable vectors and more")
    assert lines[2] == "2. -0.100  b.txt  (chunk 0)"
    assert lines[3] == "   short"


def test_format_hits_keeps_each_excerpt_on_one_line_within_width() -> None:
    text = format_hits(HITS, width=60)
    lines = text.splitlines()
    assert len(lines) == 4
    assert all(len(line) <= 60 for line in lines)
    assert lines[1].endswith("…")
    assert format_hits([]) == "no matches"


def test_excerpt() -> None:
    assert excerpt("a\n b\t c", 10) == "a b c"
    assert excerpt("abcdefghij klm", 10) == "abcdefghi…"


def test_gateway_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLINE_GATEWAY", "env:1")
    assert main(["search", "q", "--json"]) == 0
    assert main(["search", "q", "--json", "--gateway", "flag:2"]) == 0
    connects = [address for name, address in FakeClient.calls if name == "connect"]
    assert connects == ["env:1", "flag:2"]


def test_client_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.error = UnavailableError(
        "cannot reach the ragline gateway at x: is it running? (start it with `ragline up`)",
        code="UNAVAILABLE",
    )
    assert main(["search", "q"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "ragline search: cannot reach the ragline gateway at x: is it running? "
        "(start it with `ragline up`)\n"
    )


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "q", "--top-k", "0"]) == 2
    assert main(["ingest", "x", "--attr", "novalue"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert FakeClient.calls == []


def test_job_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.job_states = [_job(JobState.FAILED, indexed=2, error="boom", stage="index")]
    assert main(["job", "j-1"]) == 0  # the query worked, whatever the job's state
    out = capsys.readouterr().out
    assert "state      failed" in out
    assert "chunks     4 total, 4 embedded, 2 indexed" in out
    assert "last error [index] boom" in out


def test_format_job_lists_times() -> None:
    job = Job(
        "j",
        "d",
        1,
        JobState.COMPLETED,
        create_time=datetime(2024, 1, 1, tzinfo=UTC),
        finish_time=datetime(2024, 1, 1, 0, 1, tzinfo=UTC),
    )
    text = format_job(job)
    assert "created" in text and "finished" in text and "updated" not in text


def test_a_stuck_job_points_at_the_doctor() -> None:
    job = Job("j", "d", 1, JobState.ACTIVE, stuck=True)
    assert "stuck      no progress for too long: `ragline doctor` says why" in format_job(job)
    assert "STUCK: run `ragline doctor`" in client_commands.format_progress(job)
    assert "stuck" not in format_job(Job("j", "d", 1, JobState.ACTIVE))


def test_job_watch_json_lines_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.job_states = [_job(JobState.ACTIVE), _job(JobState.COMPLETED, indexed=4)]
    assert main(["job", "j-1", "--watch", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["state"] for line in lines] == ["active", "completed"]
    FakeClient.job_states = [_job(JobState.CANCELLED)]
    assert main(["job", "j-1", "--watch"]) == 1
    assert "cancelled" in capsys.readouterr().out


def test_document_and_delete(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["document", "d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "document_id": "d",
        "live_version": 0,
        "latest_version": 1,
        "chunk_count": 0,
    }
    assert main(["document", "d"]) == 0
    assert "none yet" in capsys.readouterr().out
    assert main(["delete", "d"]) == 0
    assert capsys.readouterr().out == "deleted d: 12 chunks removed from the index\n"


def test_ingest_no_wait_prints_job_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.md").write_text("x")
    assert main(["ingest", str(tmp_path / "a.md"), "--no-wait"]) == 0
    assert capsys.readouterr().out == "j-a.md\ta.md\n"


def test_ingest_waits_and_reports_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "doc.md").write_text("x")
    FakeClient.job_states = [
        _job(JobState.ACTIVE),
        _job(JobState.FAILED, error="cannot parse", stage="chunk"),
    ]
    assert main(["ingest", str(tmp_path / "doc.md")]) == 1
    out = capsys.readouterr().out.splitlines()
    # stdout is not a terminal here, so progress comes as plain lines.
    assert out == [
        "0/1 jobs finished, 0/0 chunks indexed",
        "1/1 jobs finished, 0/4 chunks indexed",
        "failed: doc.md (job j-1): [chunk] cannot parse",
        "0 of 1 documents ingested",
    ]


def test_ingest_json_prints_final_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "doc.md").write_text("x")
    FakeClient.job_states = [_job(JobState.COMPLETED, indexed=4)]
    assert main(["ingest", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(j["state"], j["progress"]["chunks_indexed"]) for j in data] == [("completed", 4)]


def test_plain_progress_prints_only_when_more_jobs_finish() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    progress([_job(JobState.ACTIVE)])
    progress([_job(JobState.ACTIVE, indexed=1)])
    progress([_job(JobState.COMPLETED, indexed=4)])
    assert out.getvalue().splitlines() == [
        "0/1 jobs finished, 0/4 chunks indexed",
        "1/1 jobs finished, 4/4 chunks indexed",
    ]


def test_cancel_prints_the_job_state(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.job_states = [_job(JobState.CANCELLED)]
    assert main(["cancel", "j-1"]) == 0
    assert FakeClient.calls[-1] == ("cancel", "j-1")
    assert capsys.readouterr().out == "cancelled: doc.md (job j-1)\n"


def test_cancel_json_is_the_job(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.job_states = [_job(JobState.CANCELLED, error="cancelled by request")]
    assert main(["cancel", "j-1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["job_id"], data["state"], data["last_error"]) == (
        "j-1",
        "cancelled",
        "cancelled by request",
    )
    assert set(data) == set(_job(JobState.CANCELLED).to_dict())


def test_cancelling_a_completed_job_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    FakeClient.error = FailedPreconditionError(
        "job 'j-1' is already completed; nothing to cancel", code="FAILED_PRECONDITION"
    )
    assert main(["cancel", "j-1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "ragline cancel: job 'j-1' is already completed; nothing to cancel\n"


def test_cancel_needs_a_job_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cancel"]) == 2
    assert "ragline cancel" in capsys.readouterr().err
    assert FakeClient.calls == []
