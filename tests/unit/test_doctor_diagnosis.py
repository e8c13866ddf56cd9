"""Why a stuck job is stuck: the stage it waits on, and the reason, from the broker's facts."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ragline.config import Settings
from ragline.errors import ConfigurationError
from ragline.jobs.doctor import Reason, StageFacts, diagnose, waiting_stage
from ragline.jobs.model import Job, JobProgress, JobState, Stage

pytestmark = pytest.mark.unit

LIVE = StageFacts(consumers=2, dead_letters={})


def job(
    state: JobState = JobState.ACTIVE,
    total: int = 4,
    embedded: int = 0,
    indexed: int = 0,
    **fields: Any,
) -> Job:
    return Job(
        job_id="j1",
        document_id="doc",
        document_version=3,
        state=state,
        progress=JobProgress(total, embedded, indexed),
        update_time=1000.0,
        **fields,
    )


def facts(**stages: StageFacts) -> dict[Stage, StageFacts]:
    return {stage: stages.get(stage.value, LIVE) for stage in Stage}


@pytest.mark.parametrize(
    ("the_job", "stage"),
    [
        (job(JobState.ACCEPTED, total=0), Stage.CHUNK),
        (job(total=0), Stage.CHUNK),
        (job(embedded=3), Stage.EMBED),
        (job(embedded=4, indexed=3), Stage.INDEX),
    ],
)
def test_a_job_waits_on_the_stage_its_progress_has_reached(the_job: Job, stage: Stage) -> None:
    assert waiting_stage(the_job) is stage


def test_no_consumer_on_the_stage_it_waits_on() -> None:
    nobody = StageFacts(consumers=0, dead_letters={})
    d = diagnose(job(embedded=1), facts(embed=nobody))
    assert (d.stage, d.reason) == (Stage.EMBED, Reason.NO_CONSUMER)
    assert "no embedder is reading the embed queue" in d.detail
    assert "ragline serve embedder" in d.advice
    # A stage with no consumer that the job does not wait on says nothing about it.
    assert diagnose(job(embedded=1), facts(chunk=nobody)).reason is Reason.TASK_MISSING


def test_a_dead_letter_outranks_every_other_reason() -> None:
    letters = StageFacts(consumers=0, dead_letters={"j1": "PermanentTaskError: bad pdf"})
    d = diagnose(job(JobState.ACCEPTED, total=0, last_error="x"), facts(chunk=letters))
    assert d.reason is Reason.DEAD_LETTERED
    assert "bad pdf" in d.detail and "ragline dlq requeue chunk" in d.advice


def test_a_retryable_error_means_it_waits_for_its_retry() -> None:
    # The retry is a delayed message of the index queue: that queue holds something.
    d = diagnose(
        job(embedded=4, last_error="milvus busy", attempts=3),
        facts(index=StageFacts(consumers=1, dead_letters={}, depth=1)),
    )
    assert (d.stage, d.reason) == (Stage.INDEX, Reason.RETRYING)
    assert "attempt 3" in d.detail and "milvus busy" in d.detail


@pytest.mark.parametrize("busy", ["chunk", "embed"])
def test_a_job_behind_a_backlog_is_queued_not_missing(busy: str) -> None:
    # A chunk task still queued makes the job's embed tasks again, so it counts too.
    backlog = StageFacts(consumers=1, dead_letters={}, depth=7)
    d = diagnose(job(embedded=2), facts(**{busy: backlog}))
    assert (d.stage, d.reason) == (Stage.EMBED, Reason.QUEUED)
    assert "queued behind 7 task(s) on the chunk and embed queue(s)" in d.detail
    assert "add embedders" in d.advice


def test_a_backlog_after_the_stage_a_job_waits_on_says_nothing_about_it() -> None:
    later = StageFacts(consumers=1, dead_letters={}, depth=50)
    assert diagnose(job(embedded=2), facts(index=later)).reason is Reason.TASK_MISSING
    assert diagnose(job(total=0), facts(embed=later)).reason is Reason.TASK_MISSING


def test_otherwise_the_task_is_missing_and_the_gateways_publish_it_again() -> None:
    d = diagnose(job(embedded=2), facts())
    assert d.reason is Reason.TASK_MISSING
    assert "2 embedder(s)" in d.detail and "publish its chunk task again" in d.advice
    assert "doctor --repair" in d.advice


def test_a_lost_retry_is_missing_too() -> None:
    # An error on record, but no queue holds its retry: the retry itself was lost.
    d = diagnose(job(embedded=2, last_error="milvus busy"), facts())
    assert d.reason is Reason.TASK_MISSING


def test_a_missing_task_that_cannot_be_repaired_says_the_job_is_failed() -> None:
    spent = diagnose(job(embedded=2, repairs=3), facts(), max_repairs=3)
    assert spent.reason is Reason.TASK_MISSING
    assert "published again 3 time(s) already" in spent.detail
    assert "RAGLINE_MAX_REPAIRS" in spent.advice and "ingest the document again" in spent.advice
    old = diagnose(job(embedded=2), facts(), kept=False)
    assert "not kept in the job store" in old.advice and "ingest the document again" in old.advice


def test_a_job_is_stuck_only_unfinished_and_unchanged_for_long_enough() -> None:
    active = job()
    assert active.is_stuck(now=1600.0, after_s=600)
    assert not active.is_stuck(now=1599.0, after_s=600)
    for state in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
        assert not dataclasses.replace(active, state=state).is_stuck(now=9e9, after_s=1)


def test_max_repairs_may_be_zero_but_not_negative() -> None:
    assert Settings.from_env({"RAGLINE_MAX_REPAIRS": "0"}).max_repairs == 0
    assert Settings().max_repairs == 3
    with pytest.raises(ConfigurationError, match="RAGLINE_MAX_REPAIRS"):
        Settings.from_env({"RAGLINE_MAX_REPAIRS": "-1"})


@pytest.mark.parametrize("name", ["RAGLINE_STUCK_AFTER_S", "RAGLINE_JOB_RETENTION_S"])
def test_the_stuck_threshold_and_the_retention_must_be_positive(name: str) -> None:
    assert getattr(Settings.from_env({name: "5"}), name[len("RAGLINE_") :].lower()) == 5
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: "0"})
