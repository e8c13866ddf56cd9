"""`ragline ingest`: which files it picks, the document ids they get, and how they are batched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from ragline.cli import client_commands
from ragline.cli.client_commands import SourceFile, UsageError, batch_files, collect_files
from ragline.cli.main import main
from ragline_client import Document, Job, JobState

pytestmark = pytest.mark.unit


def _write(root: Path, *names: str, content: str = "text") -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    _write(
        root,
        "b.md",
        "a.txt",
        "guide/intro.markdown",
        "guide/deep/page.HTML",
        "report.pdf",
        "image.png",
        "README",
        ".hidden.md",
        ".git/config.txt",
        "guide/.drafts/secret.md",
    )
    return root


def test_folder_is_walked_recursively_with_relative_posix_ids(docs: Path) -> None:
    files = collect_files([docs])
    assert [f.document_id for f in files] == [
        "a.txt",
        "b.md",
        "guide/deep/page.HTML",
        "guide/intro.markdown",
        "report.pdf",
    ]
    by_id = {f.document_id: f for f in files}
    assert by_id["guide/deep/page.HTML"].content_type == "text/html"
    assert by_id["report.pdf"].content_type == "application/pdf"
    assert by_id["guide/intro.markdown"].path == docs / "guide" / "intro.markdown"
    assert by_id["a.txt"].size == 4


def test_file_given_directly_gets_its_name(docs: Path) -> None:
    files = collect_files([docs / "guide" / "intro.markdown", docs / ".hidden.md"])
    assert [(f.document_id, f.content_type) for f in files] == [
        ("intro.markdown", "text/markdown"),
        (".hidden.md", "text/markdown"),  # named explicitly, so not skipped
    ]


def test_sub_folder_ids_are_relative_to_the_folder_given(docs: Path) -> None:
    assert [f.document_id for f in collect_files([docs / "guide"])] == [
        "deep/page.HTML",
        "intro.markdown",
    ]


def test_the_same_file_twice_is_ingested_once(docs: Path) -> None:
    files = collect_files([docs / "b.md", docs, docs / "b.md"])
    assert [f.document_id for f in files].count("b.md") == 1


def test_two_files_with_one_id_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "one/x.md", "two/x.md")
    with pytest.raises(UsageError, match=r"would both be document 'x\.md'"):
        collect_files([tmp_path / "one", tmp_path / "two"])


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or folder"):
        collect_files([tmp_path / "nope"])


def test_folder_without_supported_files_is_a_usage_error(tmp_path: Path) -> None:
    _write(tmp_path, "a.png", ".b.md", ".hidden/c.md")
    with pytest.raises(UsageError, match="holds no supported files"):
        collect_files([tmp_path])


def test_unsupported_file_named_directly_is_a_usage_error(tmp_path: Path) -> None:
    _write(tmp_path, "a.docx")
    with pytest.raises(UsageError, match=r"unsupported file type \.docx"):
        collect_files([tmp_path / "a.docx"])


def _files(*sizes: int) -> list[SourceFile]:
    return [SourceFile(Path(f"{i}.txt"), f"{i}.txt", "text/plain", s) for i, s in enumerate(sizes)]


def test_batches_are_cut_by_count() -> None:
    batches = batch_files(_files(*[1] * 130), max_documents=64)
    assert [len(b) for b in batches] == [64, 64, 2]
    assert [f for b in batches for f in b] == _files(*[1] * 130)  # order kept


def test_batches_are_cut_by_bytes_and_a_large_file_goes_alone() -> None:
    batches = batch_files(_files(40, 50, 10, 200, 30), max_bytes=100)
    assert [[f.size for f in b] for b in batches] == [[40, 50, 10], [200], [30]]


def test_no_files_no_batches() -> None:
    assert batch_files([]) == []


class RecordingClient:
    """Stands in for RaglineClient in the CLI: accepts every batch and completes every job."""

    batches: list[list[Document]]

    def __init__(self, address: str, **options: Any) -> None:
        self.address = address

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        pass

    def ingest_batch(self, documents: Sequence[Document]) -> list[Job]:
        RecordingClient.batches.append(list(documents))
        return [Job(f"j-{d.document_id}", d.document_id, 1, JobState.COMPLETED) for d in documents]

    def get_job(self, job_id: str) -> Job:  # pragma: no cover - every job is already terminal
        raise AssertionError(job_id)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> type[RecordingClient]:
    monkeypatch.setattr(client_commands, "RaglineClient", RecordingClient)
    RecordingClient.batches = []
    return RecordingClient


def test_ingest_submits_in_groups_with_metadata(
    tmp_path: Path, recording: type[RecordingClient], capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, *[f"d{i:03}.txt" for i in range(70)])
    argv = [
        "ingest",
        str(tmp_path),
        "--uploaded-by",
        "ana",
        "--attr",
        "lang=en",
        "--attr",
        "team=a=b",
        "--chunk-size",
        "128",
        "--chunk-overlap",
        "0",
    ]
    assert main(argv) == 0
    assert [len(b) for b in recording.batches] == [64, 6]
    doc: Any = recording.batches[1][-1]
    assert (doc.document_id, doc.content, doc.content_type) == ("d069.txt", b"text", "text/plain")
    assert (doc.chunk_size, doc.chunk_overlap) == (128, 0)
    assert doc.metadata.uploaded_by == "ana"
    assert doc.metadata.original_filename == "d069.txt"
    assert dict(doc.metadata.attributes) == {"lang": "en", "team": "a=b"}
    assert "70 of 70 documents ingested" in capsys.readouterr().out


def test_ingest_of_a_missing_path_exits_2_with_one_line(
    tmp_path: Path, recording: type[RecordingClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err == f"ragline ingest: error: {tmp_path / 'nope'}: no such file or folder\n"
    assert recording.batches == []


def test_ingest_skips_empty_files_and_refuses_when_nothing_is_left(
    tmp_path: Path, recording: type[RecordingClient], capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "empty.md", content="")
    assert main(["ingest", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "skipping" in err and "nothing to ingest" in err
