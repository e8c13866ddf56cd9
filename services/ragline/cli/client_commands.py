"""The CLI commands that talk to a running gateway: ingest, search, job, cancel, document and
delete. The dead-letter commands are in dlq_commands."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypedDict

import grpc

from ragline.tls import client_credentials
from ragline_client import (
    CONTENT_TYPES,
    Document,
    DocumentInfo,
    Hit,
    Job,
    JobState,
    Metadata,
    RaglineClient,
    RaglineClientError,
    guess_content_type,
)

MiB = 1024 * 1024
# One IngestBatch call carries at most this many documents and bytes of content.
BATCH_MAX_DOCUMENTS = 64
BATCH_MAX_BYTES = 32 * MiB
POLL_INTERVAL_S = 0.3


class UsageError(Exception):
    """A mistake on the command line; printed as one line, exit code 2."""


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest and the document id it gets."""

    path: Path
    document_id: str
    content_type: str
    size: int


# ---------------------------------------------------------------------------------------------
# Files and batches


def collect_files(paths: Sequence[str | os.PathLike[str]]) -> list[SourceFile]:
    """The supported files under `paths`, in argument order, each folder's files sorted.

    A folder is walked recursively, skipping hidden files and folders and unsupported extensions;
    its files' document ids are their paths relative to it, with `/` separators, sorted. A file named
    directly gets its file name as document id. Raises UsageError for a path that does not exist,
    a folder with no supported file, a named file of an unsupported type, or two different files
    that would get the same document id.
    """
    found: dict[str, SourceFile] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(_walk(path), key=lambda f: f.document_id)
            if not files:
                raise UsageError(f"{raw}: holds no supported files ({_supported()})")
        elif path.is_file():
            content_type = guess_content_type(path.name)
            if content_type is None:
                kind = path.suffix or "with no extension"
                raise UsageError(f"{raw}: unsupported file type {kind} (supported: {_supported()})")
            files = [SourceFile(path, path.name, content_type, path.stat().st_size)]
        else:
            raise UsageError(f"{raw}: no such file or folder")
        for file in files:
            seen = found.setdefault(file.document_id, file)
            if seen is not file and seen.path.resolve() != file.path.resolve():
                raise UsageError(
                    f"{seen.path} and {file.path} would both be document {file.document_id!r}; "
                    "ingest them in separate runs"
                )
    return list(found.values())


def _walk(root: Path) -> Iterator[SourceFile]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            content_type = guess_content_type(name)
            path = Path(dirpath, name)
            if name.startswith(".") or content_type is None or not path.is_file():
                continue
            document_id = path.relative_to(root).as_posix()
            yield SourceFile(path, document_id, content_type, path.stat().st_size)


def _supported() -> str:
    return " ".join(CONTENT_TYPES)


def batch_files(
    files: Sequence[SourceFile],
    *,
    max_documents: int = BATCH_MAX_DOCUMENTS,
    max_bytes: int = BATCH_MAX_BYTES,
) -> list[list[SourceFile]]:
    """`files` cut, in order, into groups of at most `max_documents` files and `max_bytes` bytes.
    A file larger than `max_bytes` travels alone."""
    batches: list[list[SourceFile]] = []
    current: list[SourceFile] = []
    size = 0
    for file in files:
        if current and (len(current) >= max_documents or size + file.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(file)
        size += file.size
    if current:
        batches.append(current)
    return batches


# ---------------------------------------------------------------------------------------------
# Output formatting


def hits_to_json(hits: Sequence[Hit]) -> str:
    """Search hits as a JSON array of objects."""
    return json.dumps([hit.to_dict() for hit in hits], indent=2, ensure_ascii=False)


def format_hits(hits: Sequence[Hit], width: int = 100) -> str:
    """Search hits as a numbered list: score, document id and chunk, then a one-line excerpt."""
    if not hits:
        return "no matches"
    number_width = len(str(len(hits)))
    lines = []
    for n, hit in enumerate(hits, start=1):
        lines.append(
            f"{n:>{number_width}}. {hit.score:.3f}  {hit.document_id}  (chunk {hit.chunk_index})"
        )
        indent = " " * (number_width + 2)
        lines.append(indent + excerpt(hit.text, max(20, width - len(indent))))
    return "\n".join(lines)


def excerpt(text: str, width: int) -> str:
    """`text` on one line, whitespace collapsed, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def format_progress(job: Job) -> str:
    """A job's state and chunk counts on one line."""
    p = job.progress
    line = f"{job.state.value:<9}  chunks: {p.chunks_total} total, "
    line += f"{p.chunks_embedded} embedded, {p.chunks_indexed} indexed"
    if job.attempts > 1:
        line += f"  (attempt {job.attempts})"
    if job.last_error:
        line += f"  last error: {_error_text(job)}"
    if job.stuck:
        line += "  STUCK: run `ragline doctor`"
    return line


def format_job(job: Job) -> str:
    """A job's full description, one field a line."""
    p = job.progress
    rows = [
        ("job", job.job_id),
        ("document", f"{job.document_id} (version {job.document_version})"),
        ("state", job.state.value),
        (
            "chunks",
            f"{p.chunks_total} total, {p.chunks_embedded} embedded, {p.chunks_indexed} indexed",
        ),
        ("attempts", str(job.attempts)),
    ]
    if job.stuck:
        rows.append(("stuck", "no progress for too long: `ragline doctor` says why"))
    if job.last_error:
        rows.append(("last error", _error_text(job)))
    if job.request_id:
        rows.append(("request id", job.request_id))
    for label, value in (
        ("created", job.create_time),
        ("updated", job.update_time),
        ("finished", job.finish_time),
    ):
        if value is not None:
            rows.append((label, value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")))
    return "\n".join(f"{label:<11}{value}" for label, value in rows)


def format_document(info: DocumentInfo) -> str:
    """A document's versions and chunk count, one field a line."""
    live = (
        f"version {info.live_version}"
        if info.live_version
        else "none yet (the first version is still being ingested)"
    )
    rows = [
        ("document", info.document_id),
        ("searchable", live),
        ("latest", f"version {info.latest_version}"),
        ("chunks", str(info.chunk_count)),
    ]
    return "\n".join(f"{label:<11}{value}" for label, value in rows)


def _error_text(job: Job) -> str:
    return f"[{job.last_error_stage}] {job.last_error}" if job.last_error_stage else job.last_error


def _print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out or sys.stdout)


# ---------------------------------------------------------------------------------------------
# Commands


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ingest, search, job, cancel, document and delete subcommands."""
    p = subparsers.add_parser(
        "ingest",
        help="ingest files and folders, then follow their jobs",
        description="Ingest files and folders (recursively; hidden files skipped). A file's "
        "document id is its path relative to the folder given, or its name when given directly. "
        f"Supported: {_supported()}. Exit code 0 when every job completed, 1 otherwise.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to ingest")
    p.add_argument("--no-wait", action="store_true", help="print the job ids and return at once")
    p.add_argument("--chunk-size", type=_positive_int, metavar="N", help="tokens per chunk")
    p.add_argument(
        "--chunk-overlap", type=_non_negative_int, metavar="N", help="tokens shared by chunks"
    )
    p.add_argument("--uploaded-by", default="", metavar="NAME", help="who uploads the documents")
    p.add_argument(
        "--attr",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a metadata attribute stored with every chunk; repeatable",
    )
    p.add_argument("--json", action="store_true", help="print the jobs as JSON")
    p.set_defaults(handler=cmd_ingest)

    p = subparsers.add_parser("search", help="search the index")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--top-k", type=_top_k, default=10, metavar="N", help="hits (1-1000, 10)")
    p.add_argument(
        "--document-id",
        dest="document_ids",
        action="append",
        default=[],
        metavar="ID",
        help="search only this document; repeatable",
    )
    p.add_argument("--json", action="store_true", help="print the hits as a JSON array")
    p.set_defaults(handler=cmd_search)

    p = subparsers.add_parser("job", help="show a job's state and progress")
    p.add_argument("job_id", metavar="ID")
    p.add_argument(
        "--watch",
        action="store_true",
        help="follow the job until it ends; exit code 0 if it completed, 1 otherwise",
    )
    p.add_argument(
        "--json", action="store_true", help="print JSON (one object a line with --watch)"
    )
    p.set_defaults(handler=cmd_job)

    p = subparsers.add_parser(
        "cancel",
        help="cancel a job: stop its work and remove what it already indexed",
        description="Cancel a job: every stage drops its remaining work and the vectors it already "
        "wrote are removed. A completed job cannot be cancelled (exit code 1); cancelling a "
        "cancelled job changes nothing.",
    )
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p.set_defaults(handler=cmd_cancel)

    p = subparsers.add_parser("document", help="show a document's versions and chunk count")
    p.add_argument("document_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_document)

    p = subparsers.add_parser("delete", help="delete a document from the index")
    p.add_argument("document_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_delete)


def _positive_int(raw: str) -> int:
    value = _int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {raw}")
    return value


def _non_negative_int(raw: str) -> int:
    value = _int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {raw}")
    return value


def _top_k(raw: str) -> int:
    value = _int(raw)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be from 1 to 1000, not {raw}")
    return value


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None


def _key_value(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {raw!r}")
    return key, value


def connect(args: argparse.Namespace) -> RaglineClient:
    """The client the command's --gateway, --api-key and TLS flags describe."""
    return RaglineClient(args.gateway, api_key=args.api_key, **tls_options(args))


# Each TLS flag (see main.py) and the variable it defaults to.
TLS_FLAGS = {
    "ca": ("--ca", "RAGLINE_TLS_CA_FILE"),
    "cert": ("--cert", "RAGLINE_TLS_CLIENT_CERT_FILE"),
    "key": ("--key", "RAGLINE_TLS_CLIENT_KEY_FILE"),
}


class TlsOptions(TypedDict, total=False):
    credentials: grpc.ChannelCredentials


def tls_options(args: argparse.Namespace) -> TlsOptions:
    """RaglineClient's credentials from --ca, --cert and --key, each defaulting to its RAGLINE_TLS_*
    variable: TLS when any is set (no CA trusts the system's), plaintext ({}) when none is. A bad
    file is a ConfigurationError naming the flag or variable that gave it."""
    given: dict[str, tuple[str, str]] = {}
    for attr, (flag, variable) in TLS_FLAGS.items():
        value = getattr(args, attr, None)
        given[attr] = (flag, value) if value else (variable, os.environ.get(variable, ""))
    if not any(path for _, path in given.values()):
        return {}
    return {"credentials": client_credentials(given["ca"], given["cert"], given["key"])}


def cmd_ingest(args: argparse.Namespace) -> int:
    """`ragline ingest`: submit files in batches, then follow the jobs until they all end."""
    files = collect_files(args.paths)
    for file in files:
        if file.size == 0:
            print(f"skipping {file.path}: the file is empty", file=sys.stderr)
    files = [f for f in files if f.size > 0]
    if not files:
        raise UsageError("nothing to ingest: every file given is empty")
    metadata = Metadata(uploaded_by=args.uploaded_by, attributes=dict(args.attr))

    with connect(args) as client:
        jobs = _submit(client, files, metadata, args)
        if args.no_wait:
            if args.json:
                _print_json([job.to_dict() for job in jobs])
            else:
                for job in jobs:
                    print(f"{job.job_id}\t{job.document_id}")
            return 0
        try:
            final = _follow(client, jobs, quiet=args.json)
        except KeyboardInterrupt:
            print(
                "stopped following; the jobs go on in the background "
                "(see one with `ragline job ID`)",
                file=sys.stderr,
            )
            return 130

    if args.json:
        _print_json([job.to_dict() for job in final])
    failed = [job for job in final if job.state is not JobState.COMPLETED]
    if not args.json:
        for job in failed:
            print(f"{job.state.value}: {job.document_id} (job {job.job_id}): {_error_text(job)}")
        print(f"{len(final) - len(failed)} of {len(final)} documents ingested")
    return 1 if failed else 0


def _submit(
    client: RaglineClient, files: Sequence[SourceFile], metadata: Metadata, args: argparse.Namespace
) -> list[Job]:
    jobs: list[Job] = []
    try:
        for batch in batch_files(files):
            documents = [
                Document.from_file(
                    f.path,
                    document_id=f.document_id,
                    content_type=f.content_type,
                    metadata=metadata,
                    chunk_size=args.chunk_size,
                    chunk_overlap=args.chunk_overlap,
                )
                for f in batch
            ]
            jobs.extend(client.ingest_batch(documents))
    except (RaglineClientError, OSError):
        if jobs:
            print(
                f"{len(jobs)} of {len(files)} documents were accepted before this error; "
                "their jobs go on",
                file=sys.stderr,
            )
        raise
    return jobs


def follow_jobs(
    client: RaglineClient,
    jobs: Sequence[Job],
    on_update: Callable[[Sequence[Job]], None],
    interval: float | None = None,
) -> list[Job]:
    """Polls every unfinished job each `interval` seconds (default POLL_INTERVAL_S) until all are
    terminal, calling `on_update` with the jobs (in the given order) after each round; returns the
    final jobs."""
    interval = POLL_INTERVAL_S if interval is None else interval
    current = {job.job_id: job for job in jobs}
    on_update(list(current.values()))
    while pending := [job_id for job_id, job in current.items() if not job.state.is_terminal]:
        time.sleep(interval)
        for job_id in pending:
            current[job_id] = client.get_job(job_id)
        on_update(list(current.values()))
    return list(current.values())


def _follow(client: RaglineClient, jobs: Sequence[Job], *, quiet: bool) -> list[Job]:
    if quiet:
        return follow_jobs(client, jobs, lambda _: None)
    if not sys.stdout.isatty():
        return follow_jobs(client, jobs, PlainProgress(sys.stdout))
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jobs  {task.fields[chunks]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task("ingesting", total=len(jobs), chunks="")

        def update(current: Sequence[Job]) -> None:
            progress.update(task, completed=_finished(current), chunks=_chunk_summary(current))

        return follow_jobs(client, jobs, update)


class PlainProgress:
    """Progress for a non-terminal stdout: a line each time another job finishes."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._last = -1

    def __call__(self, jobs: Sequence[Job]) -> None:
        finished = _finished(jobs)
        if finished != self._last:
            self._last = finished
            print(f"{finished}/{len(jobs)} jobs finished, {_chunk_summary(jobs)}", file=self._out)
            self._out.flush()


def _finished(jobs: Sequence[Job]) -> int:
    return sum(job.state.is_terminal for job in jobs)


def _chunk_summary(jobs: Sequence[Job]) -> str:
    total = sum(job.progress.chunks_total for job in jobs)
    indexed = sum(job.progress.chunks_indexed for job in jobs)
    return f"{indexed}/{total} chunks indexed"


def cmd_search(args: argparse.Namespace) -> int:
    """`ragline search`: print the closest chunks."""
    with connect(args) as client:
        hits = client.search(args.query, top_k=args.top_k, document_ids=args.document_ids)
    if args.json:
        print(hits_to_json(hits))
    else:
        print(format_hits(hits, width=shutil.get_terminal_size().columns))
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    """`ragline job`: show a job, or follow it until it ends."""
    with connect(args) as client:
        if not args.watch:
            job = client.get_job(args.job_id)
            print(json.dumps(job.to_dict(), indent=2) if args.json else format_job(job))
            return 0
        last: Job | None = None
        for job in client.watch(args.job_id):
            last = job
            if args.json:
                print(json.dumps(job.to_dict()), flush=True)
            else:
                print(f"{time.strftime('%H:%M:%S')}  {format_progress(job)}", flush=True)
        if last is None or not last.state.is_terminal:  # the stream ended early: poll instead
            last = client.wait(args.job_id)
    return 0 if last.state is JobState.COMPLETED else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    """`ragline cancel`: cancel a job and print its state."""
    with connect(args) as client:
        job = client.cancel(args.job_id)
    if args.json:
        _print_json(job.to_dict())
    else:
        print(f"{job.state.value}: {job.document_id} (job {job.job_id})")
    return 0


def cmd_document(args: argparse.Namespace) -> int:
    """`ragline document`: show a document's versions and chunk count."""
    with connect(args) as client:
        info = client.get_document(args.document_id)
    if args.json:
        _print_json(info.to_dict())
    else:
        print(format_document(info))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """`ragline delete`: remove a document's chunks from the index."""
    with connect(args) as client:
        deleted = client.delete(args.document_id)
    result: Mapping[str, Any] = {"document_id": args.document_id, "chunks_deleted": deleted}
    if args.json:
        _print_json(result)
    else:
        print(f"deleted {args.document_id}: {deleted} chunks removed from the index")
    return 0
