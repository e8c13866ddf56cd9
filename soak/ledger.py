"""The soak's ledger: every operation a client saw accepted, and the check of the end state
against it. Pure logic: the soak feeds it what the API answered.

The promise checked, per document: each accepted ingest ends completed, cancelled (only when
asked) or failed with a dead letter that gives the reason; the index then holds the newest
completed version that no later delete voided, with exactly that job's chunks, each once. A
document deleted with nothing ingested after holds nothing. No job is left non-terminal.

Each document is owned by one client, so its operations are in the ledger in the order the
server took them: an ingest answered before a delete started got a version the delete voids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TERMINAL = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Ingest:
    job_id: str
    version: int
    latency_s: float


@dataclass(frozen=True)
class Delete:
    pass


@dataclass(frozen=True)
class Cancel:
    job_id: str
    # False when the job had already ended (the server answered FAILED_PRECONDITION).
    cancelled: bool


Event = Ingest | Delete | Cancel


@dataclass(frozen=True)
class JobView:
    """A job's final state as GetJob answered it."""

    state: str
    chunks_total: int
    last_error: str = ""


@dataclass(frozen=True)
class DocumentView:
    """What GetDocument and a search limited to the document answered at the end: the live
    version, and (version, chunk_index) of every hit."""

    live_version: int
    hits: Sequence[tuple[int, int]] = ()


@dataclass
class Verdict:
    """What the check found; every count but `documents` and `jobs` should be zero."""

    documents: int = 0
    jobs: int = 0
    lost: int = 0  # accepted, and neither in the index, nor dead-lettered, nor cancelled as asked
    duplicated: int = 0  # chunks the index returned more than once
    stuck: int = 0  # jobs not terminal at the end
    wrong_version: int = 0  # documents whose live version is not the one expected
    resurrected: int = 0  # documents deleted (or never completed) that still answer searches
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.duplicated or self.stuck or self.wrong_version or self.resurrected
        )


@dataclass
class Ledger:
    """Events per document, in the order the owning client saw them accepted."""

    events: dict[str, list[Event]] = field(default_factory=dict)

    def record(self, document_id: str, event: Event) -> None:
        self.events.setdefault(document_id, []).append(event)

    def job_ids(self) -> list[str]:
        return [e.job_id for evs in self.events.values() for e in evs if isinstance(e, Ingest)]

    def ingest_latencies(self) -> list[float]:
        return [e.latency_s for evs in self.events.values() for e in evs if isinstance(e, Ingest)]

    def counts(self) -> Counter[str]:
        return Counter(type(e).__name__.lower() for evs in self.events.values() for e in evs)

    def verify(
        self,
        jobs: Mapping[str, JobView | None],
        dead_letters: Mapping[str, str],
        documents: Mapping[str, DocumentView | None],
    ) -> Verdict:
        """Checks the end state: `jobs` by job id (None: GetJob said NOT_FOUND), the reason of
        each dead letter by job id, and `documents` by id (None: GetDocument said NOT_FOUND)."""
        verdict = Verdict(documents=len(self.events))
        for document_id, events in self.events.items():
            self._verify_document(document_id, events, jobs, dead_letters, documents, verdict)
        return verdict

    def _verify_document(
        self,
        document_id: str,
        events: Sequence[Event],
        jobs: Mapping[str, JobView | None],
        dead_letters: Mapping[str, str],
        documents: Mapping[str, DocumentView | None],
        verdict: Verdict,
    ) -> None:
        def problem(counter: str, text: str) -> None:
            setattr(verdict, counter, getattr(verdict, counter) + 1)
            verdict.problems.append(f"{document_id}: {text} (history: {history(events)})")

        ingests = [e for e in events if isinstance(e, Ingest)]
        # A delete voids every version given before it; one still in flight ends cancelled.
        voided: set[str] = set()
        for i, event in enumerate(events):
            if isinstance(event, Delete):
                voided |= {e.job_id for e in events[:i] if isinstance(e, Ingest)}
        floor = max((e.version for e in ingests if e.job_id in voided), default=0)
        may_cancel = voided | {e.job_id for e in events if isinstance(e, Cancel) and e.cancelled}
        completed: dict[int, JobView] = {}
        for event in ingests:
            verdict.jobs += 1
            job = jobs.get(event.job_id)
            if job is None:
                problem("lost", f"job {event.job_id} (v{event.version}) no longer exists")
            elif job.state not in TERMINAL:
                problem("stuck", f"job {event.job_id} (v{event.version}) is still {job.state}")
            elif job.state == "failed" and not dead_letters.get(event.job_id):
                problem("lost", f"job {event.job_id} failed with no dead letter: {job.last_error}")
            elif job.state == "cancelled" and event.job_id not in may_cancel:
                problem("lost", f"job {event.job_id} was cancelled, and nobody asked")
            elif job.state == "completed":
                completed[event.version] = job
        expected = max((v for v in completed if v > floor), default=0)
        view = documents.get(document_id)
        live = view.live_version if view is not None else 0
        hits = list(view.hits) if view is not None else []
        if live != expected:
            problem("wrong_version", f"live version {live}, expected {expected}")
        if expected == 0:
            if hits:
                problem("resurrected", f"{len(hits)} hits though no version should be live")
            return
        versions = {v for v, _ in hits}
        if versions - {expected}:
            problem("wrong_version", f"hits of versions {sorted(versions)}, expected {expected}")
        repeats = sum(n - 1 for n in Counter(hits).values() if n > 1)
        if repeats:
            verdict.duplicated += repeats
            verdict.problems.append(f"{document_id}: {repeats} chunks returned twice")
        want = completed[expected].chunks_total
        have = len({c for v, c in hits if v == expected})
        if have != want:
            problem("lost", f"v{expected} answers with {have} of its {want} chunks")


def history(events: Sequence[Event]) -> str:
    """A document's events in a line, for a problem report."""
    parts = []
    for e in events:
        if isinstance(e, Ingest):
            parts.append(f"ingest v{e.version} {e.job_id[:8]}")
        elif isinstance(e, Cancel):
            parts.append(f"cancel {e.job_id[:8]}" + ("" if e.cancelled else " (had ended)"))
        else:
            parts.append("delete")
    return ", ".join(parts)


def mixes_versions(hits: Sequence[tuple[str, int]]) -> bool:
    """Whether one search answer holds chunks of two versions of one document; `hits` are
    (document_id, version) pairs."""
    seen: dict[str, int] = {}
    return any(seen.setdefault(document_id, version) != version for document_id, version in hits)
