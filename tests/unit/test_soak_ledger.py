"""The soak's ledger: which end states keep the promise and which break it."""

from __future__ import annotations

import pytest

from soak.ledger import Cancel, Delete, DocumentView, Ingest, JobView, Ledger, mixes_versions

pytestmark = pytest.mark.unit


def done(chunks: int) -> JobView:
    return JobView("completed", chunks)


def whole(version: int, chunks: int) -> DocumentView:
    return DocumentView(version, [(version, i) for i in range(chunks)])


def test_the_newest_completed_version_whole_and_once_is_clean() -> None:
    ledger = Ledger()
    ledger.record("d", Ingest("j1", 1, 0.01))
    ledger.record("d", Ingest("j2", 2, 0.01))
    ledger.record("d", Ingest("j3", 3, 0.01))
    ledger.record("d", Cancel("j3", cancelled=True))
    jobs = {"j1": done(4), "j2": JobView("failed", 3, "boom"), "j3": JobView("cancelled", 2)}
    # v2 failed (with its dead letter), v3 was cancelled as asked: v1 stays live.
    verdict = ledger.verify(jobs, {"j2": "PermanentTaskError: boom"}, {"d": whole(1, 4)})
    assert verdict.clean, verdict.problems
    assert (verdict.documents, verdict.jobs) == (1, 3)


def test_a_delete_voids_what_came_before_it_and_not_after() -> None:
    ledger = Ledger()
    ledger.record("d", Ingest("j1", 1, 0.01))
    ledger.record("d", Delete())
    jobs = {"j1": done(2)}
    assert ledger.verify(jobs, {}, {"d": None}).clean
    resurrected = ledger.verify(jobs, {}, {"d": whole(1, 2)})
    assert (resurrected.wrong_version, resurrected.resurrected) == (1, 1)
    ledger.record("d", Ingest("j2", 2, 0.01))
    jobs["j2"] = done(3)
    assert ledger.verify(jobs, {}, {"d": whole(2, 3)}).clean
    # A version still in flight when its document is deleted ends cancelled: asked for.
    jobs["j1"] = JobView("cancelled", 2)
    assert ledger.verify(jobs, {}, {"d": whole(2, 3)}).clean
    ledger.record("d", Ingest("j3", 3, 0.01))
    jobs["j3"] = JobView("cancelled", 1)  # after the delete: nobody asked
    assert ledger.verify(jobs, {}, {"d": whole(2, 3)}).lost == 1


@pytest.mark.parametrize(
    ("job", "dead_letters", "counter"),
    [
        (None, {}, "lost"),  # the job record vanished
        (JobView("active", 3), {}, "stuck"),
        (JobView("accepted", 0), {}, "stuck"),
        (JobView("failed", 3, "boom"), {}, "lost"),  # failed, but no dead letter says why
        (JobView("cancelled", 3), {}, "lost"),  # nobody asked for it
    ],
)
def test_each_way_of_losing_an_accepted_document_is_counted(
    job: JobView | None, dead_letters: dict[str, str], counter: str
) -> None:
    ledger = Ledger()
    ledger.record("d", Ingest("j1", 1, 0.01))
    verdict = ledger.verify({"j1": job}, dead_letters, {"d": None})
    assert getattr(verdict, counter) == 1
    assert not verdict.clean
    assert verdict.problems and verdict.problems[0].startswith("d: ")


def test_missing_duplicated_and_mixed_chunks_are_counted() -> None:
    ledger = Ledger()
    ledger.record("d", Ingest("j1", 1, 0.01))
    ledger.record("d", Ingest("j2", 2, 0.01))
    jobs = {"j1": done(3), "j2": done(3)}
    missing = ledger.verify(jobs, {}, {"d": DocumentView(2, [(2, 0), (2, 1)])})
    assert missing.lost == 1
    doubled = ledger.verify(jobs, {}, {"d": DocumentView(2, [(2, 0), (2, 1), (2, 2), (2, 1)])})
    assert (doubled.duplicated, doubled.lost) == (1, 0)
    old_live = ledger.verify(jobs, {}, {"d": whole(1, 3)})
    assert old_live.wrong_version >= 1
    mixed = ledger.verify(jobs, {}, {"d": DocumentView(2, [(2, 0), (2, 1), (2, 2), (1, 0)])})
    assert mixed.wrong_version == 1


def test_a_cancel_of_a_job_that_had_ended_changes_nothing() -> None:
    ledger = Ledger()
    ledger.record("d", Ingest("j1", 1, 0.01))
    ledger.record("d", Cancel("j1", cancelled=False))
    assert ledger.verify({"j1": done(2)}, {}, {"d": whole(1, 2)}).clean
    assert ledger.counts() == {"ingest": 1, "cancel": 1}
    assert ledger.job_ids() == ["j1"]


def test_a_search_answer_mixes_versions_only_within_one_document() -> None:
    assert not mixes_versions([("a", 1), ("b", 2), ("a", 1)])
    assert mixes_versions([("a", 1), ("b", 2), ("a", 2)])
    assert not mixes_versions([])
