"""`ragline dlq list|requeue|purge`: what they ask the gateway for, what they print, exit codes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import pytest

from ragline.cli import client_commands
from ragline.cli.dlq_commands import format_dead_letters
from ragline.cli.main import main
from ragline_client import DeadLetter, Stage

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _letter(n: int, **fields: Any) -> DeadLetter:
    values: dict[str, Any] = {
        "dead_letter_id": f"1714000000000-{n}",
        "stage": Stage.EMBED,
        "job_id": f"j-{n}",
        "document_id": f"docs/{n}.md",
        "error_type": "PermanentTaskError",
        "error_message": f"embedding model rejected\nchunk {n}",
        "attempts": 3,
        "first_failure_time": T0,
        "last_failure_time": T0 + timedelta(minutes=n),
        "message_bytes": 100,
    }
    values.update(fields)
    return DeadLetter(**values)


class FakeClient:
    """Stands in for RaglineClient: a canned dead-letter queue, and every call recorded."""

    calls: list[tuple[str, Any]]
    letters: list[DeadLetter]
    consumed: int
    found: int | None  # what requeue/purge say they did; None: as many as asked, or every letter

    def __init__(self, address: str, **options: Any) -> None:
        FakeClient.calls.append(("connect", address))

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        pass

    def iter_dead_letters(self, stage: str, *, page_size: int = 100) -> Iterator[DeadLetter]:
        FakeClient.calls.append(("iter_dead_letters", (stage, page_size)))
        for letter in FakeClient.letters:
            FakeClient.consumed += 1
            yield letter

    def requeue_dead_letters(self, stage: str, ids: Sequence[str] = ()) -> int:
        FakeClient.calls.append(("requeue", (stage, list(ids))))
        return self._done(ids)

    def purge_dead_letters(self, stage: str, ids: Sequence[str] = ()) -> int:
        FakeClient.calls.append(("purge", (stage, list(ids))))
        return self._done(ids)

    def _done(self, ids: Sequence[str]) -> int:
        if FakeClient.found is not None:
            return FakeClient.found
        return len(ids) or len(FakeClient.letters)


@pytest.fixture(autouse=True)
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    monkeypatch.setattr(client_commands, "RaglineClient", FakeClient)
    monkeypatch.delenv("RAGLINE_GATEWAY", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    FakeClient.calls, FakeClient.letters, FakeClient.consumed, FakeClient.found = [], [], 0, None
    return FakeClient


class Terminal(io.StringIO):
    """A stdin that says it is a terminal, with the user's answer already typed."""

    def isatty(self) -> bool:
        return True


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------------------------
# list


def test_list_prints_a_table_with_one_line_per_letter(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.letters = [_letter(1), _letter(2, job_id="", document_id="", attempts=12)]
    assert main(["dlq", "list", "embed"]) == 0
    assert FakeClient.calls == [
        ("connect", "127.0.0.1:50051"),
        ("iter_dead_letters", ("embed", 101)),
    ]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert [h.strip() for h in lines[0].split("  ") if h.strip()] == [
        "ID",
        "JOB",
        "DOCUMENT",
        "ERROR TYPE",
        "ATTEMPTS",
        "LAST FAILURE",
        "ERROR",
    ]
    assert lines[1].split() == [
        "1714000000000-1",
        "j-1",
        "docs/1.md",
        "PermanentTaskError",
        "3",
        *_local(T0 + timedelta(minutes=1)).split(),
        "embedding",
        "model",
        "rejected",
        "chunk",
        "1",
    ]
    assert lines[2].split()[:5] == ["1714000000000-2", "-", "-", "PermanentTaskError", "12"]
    assert all(len(line) <= 120 for line in lines)
    # Columns line up under their headers.
    assert lines[1].index("docs/1.md") == lines[0].index("DOCUMENT")
    assert lines[1].index("embedding") == lines[0].rindex("ERROR")


def test_format_cuts_the_error_message_to_the_width() -> None:
    long = _letter(1, error_message="Traceback:\n" + "x " * 200, last_failure_time=None)
    lines = format_dead_letters([long], width=120).splitlines()
    assert len(lines) == 2
    assert len(lines[1]) == 120
    assert lines[1].endswith("…")
    assert "  -  " in lines[1]  # no last failure time
    narrow = format_dead_letters([long], width=10).splitlines()
    assert narrow[1].endswith("…")  # the message keeps a minimum width instead of vanishing


def test_list_says_when_the_queue_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "list", "chunk"]) == 0
    assert capsys.readouterr().out == "the chunk dead-letter queue is empty\n"
    assert main(["dlq", "list", "chunk", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_list_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.letters = [_letter(1)]
    assert main(["dlq", "list", "EMBED", "--json"]) == 0  # stage names are not case-sensitive
    data = json.loads(capsys.readouterr().out)
    assert data == [
        {
            "dead_letter_id": "1714000000000-1",
            "stage": "embed",
            "job_id": "j-1",
            "document_id": "docs/1.md",
            "error_type": "PermanentTaskError",
            "error_message": "embedding model rejected\nchunk 1",
            "attempts": 3,
            "first_failure_time": "2024-05-06T07:08:09+00:00",
            "last_failure_time": "2024-05-06T07:09:09+00:00",
            "message_bytes": 100,
        }
    ]


def test_list_stops_at_the_limit_and_says_more_remain(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.letters = [_letter(n) for n in range(2500)]
    assert main(["dlq", "list", "index", "--limit", "1200", "--json"]) == 0
    assert FakeClient.calls[-1] == ("iter_dead_letters", ("index", 1000))  # the gateway's maximum
    assert FakeClient.consumed == 1201  # one more than shown, to know whether more remain
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 1200
    assert "showing the oldest 1200 dead letters; more remain" in captured.err


def test_list_within_the_limit_says_nothing_more(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.letters = [_letter(n) for n in range(3)]
    assert main(["dlq", "list", "index", "--limit", "3"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4
    assert captured.err == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq"],
        ["dlq", "list"],
        ["dlq", "list", "chunks"],
        ["dlq", "list", "gateway"],
        ["dlq", "list", "chunk", "--limit", "0"],
        ["dlq", "list", "chunk", "--limit", "ten"],
        ["dlq", "show", "chunk"],
    ],
)
def test_list_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err
    assert FakeClient.calls == []


def test_gateway_option_after_the_nested_command() -> None:
    assert main(["dlq", "list", "chunk", "--gateway", "gw:9"]) == 0
    assert main(["--gateway", "gw:8", "dlq", "list", "chunk"]) == 0
    assert [a for name, a in FakeClient.calls if name == "connect"] == ["gw:9", "gw:8"]


# ---------------------------------------------------------------------------------------------
# requeue and purge


def test_requeue_named_letters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "requeue", "embed", "a", "b", "a"]) == 0
    assert FakeClient.calls[-1] == ("requeue", ("embed", ["a", "b"]))  # repeats dropped
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "requeued 2 dead letters to the embed stage",
        "their jobs run again: watch the jobs with `ragline job ID --watch`",
    ]


def test_requeue_all(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.letters = [_letter(1)]
    assert main(["dlq", "requeue", "index", "--all"]) == 0
    assert FakeClient.calls[-1] == ("requeue", ("index", []))
    assert capsys.readouterr().out.startswith("requeued 1 dead letter to the index stage\n")


def test_requeue_of_missing_letters_says_so_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    FakeClient.found = 1
    assert main(["dlq", "requeue", "chunk", "a", "b"]) == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        "requeued 1 of 2 dead letters to the chunk stage "
        "(the others were not in the dead-letter queue)"
    )
    FakeClient.found = 0
    assert main(["dlq", "requeue", "chunk", "a"]) == 1
    assert "nothing requeued: no such dead letter" in capsys.readouterr().out


def test_requeue_all_of_an_empty_queue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "requeue", "chunk", "--all"]) == 0
    assert capsys.readouterr().out == "nothing requeued: the chunk dead-letter queue is empty\n"


def test_requeue_and_purge_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "requeue", "embed", "a", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"stage": "embed", "requeued": 1}
    assert main(["dlq", "purge", "embed", "a", "b", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"stage": "embed", "purged": 2}


@pytest.mark.parametrize("command", ["requeue", "purge"])
def test_ids_or_all_is_required(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", command, "chunk"]) == 2
    assert capsys.readouterr().err == (
        f"ragline dlq {command}: error: give the dead-letter ids to {command} "
        "(see `ragline dlq list chunk`), or --all\n"
    )
    assert main(["dlq", command, "chunk", "a", "--all"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["dlq", command, "chunks", "--all"]) == 2
    assert "invalid choice: 'chunks'" in capsys.readouterr().err
    assert FakeClient.calls == []


def test_purge_named_letters_asks_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(""))
    assert main(["dlq", "purge", "chunk", "a"]) == 0
    assert FakeClient.calls[-1] == ("purge", ("chunk", ["a"]))
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "purged 1 dead letter from the chunk stage",
        "their jobs stay failed: ingest those documents again to retry them",
    ]


@pytest.mark.parametrize(("answer", "purged"), [("y\n", True), ("yes\n", True), ("n\n", False)])
def test_purge_all_asks_on_a_terminal(
    answer: str, purged: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeClient.letters = [_letter(1), _letter(2)]
    monkeypatch.setattr("sys.stdin", Terminal(answer))
    assert main(["dlq", "purge", "embed", "--all"]) == (0 if purged else 1)
    captured = capsys.readouterr()
    assert "purge every dead letter in the embed queue? This cannot be undone." in captured.err
    if purged:
        assert FakeClient.calls[-1] == ("purge", ("embed", []))
        assert captured.out.startswith("purged 2 dead letters from the embed stage\n")
    else:
        assert [name for name, _ in FakeClient.calls] == []  # not even connected
        assert captured.err.endswith("nothing purged\n")


def test_purge_all_on_eof_purges_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(""))
    assert main(["dlq", "purge", "embed", "--all"]) == 1
    assert FakeClient.calls == []


def test_purge_all_with_yes_or_without_a_terminal_does_not_ask(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(""))
    assert main(["dlq", "purge", "index", "--all", "--yes"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["dlq", "purge", "index", "--all"]) == 0
    assert [c for c in FakeClient.calls if c[0] == "purge"] == [("purge", ("index", []))] * 2
    assert "cannot be undone" not in capsys.readouterr().err
