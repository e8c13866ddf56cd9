"""Why a job is stuck, from what the job store and the broker say; pure logic.

A job is stuck when it is unfinished and nothing has changed it for RAGLINE_STUCK_AFTER_S. The
stage it waits on follows from its progress, and the reason from that stage's queue, checked in
this order:

    reason          what was seen                                   what to do
    dead-lettered   the job's task is in the stage's dead-letter    requeue or purge it
                    queue, yet the job was not failed
    no consumer     no worker reads the stage's queue               start one
    retrying        the job carries a retryable error               wait: it retries by itself,
                                                                    and is dead-lettered when
                                                                    its attempts run out
    task missing    a worker reads the queue, and the task is       ingest the document again
                    neither retrying nor dead-lettered
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ragline.jobs.model import Job, JobState, Stage

__all__ = ["Diagnosis", "Reason", "StageFacts", "diagnose", "waiting_stage"]

_WORKER = {Stage.CHUNK: "chunker", Stage.EMBED: "embedder", Stage.INDEX: "indexer"}


class Reason(enum.StrEnum):
    DEAD_LETTERED = "dead-lettered"
    NO_CONSUMER = "no consumer"
    RETRYING = "retrying"
    TASK_MISSING = "task missing"


@dataclass(frozen=True)
class StageFacts:
    """What the broker says of one stage's queue."""

    consumers: int
    # Dead-letter errors by job id, for the jobs that have a record in the stage's queue.
    dead_letters: dict[str, str]


@dataclass(frozen=True)
class Diagnosis:
    job: Job
    stage: Stage
    reason: Reason
    detail: str
    advice: str


def waiting_stage(job: Job) -> Stage:
    """The stage whose work the job waits for: chunking until its chunks are counted, then
    embedding until every chunk is embedded, then indexing."""
    p = job.progress
    if job.state is JobState.ACCEPTED or p.chunks_total == 0:
        return Stage.CHUNK
    if p.chunks_embedded < p.chunks_total:
        return Stage.EMBED
    return Stage.INDEX


def diagnose(job: Job, facts: dict[Stage, StageFacts]) -> Diagnosis:
    """Why `job` makes no progress, given the facts of every stage."""
    stage = waiting_stage(job)
    seen = facts[stage]
    worker = _WORKER[stage]
    letter = seen.dead_letters.get(job.job_id)
    if letter is not None:
        return Diagnosis(
            job,
            stage,
            Reason.DEAD_LETTERED,
            f"its {stage.value} task is in the dead-letter queue ({letter}), but the job was "
            "never failed",
            f"fix the cause, then `ragline dlq requeue {stage.value} ID`, or purge it",
        )
    if seen.consumers == 0:
        return Diagnosis(
            job,
            stage,
            Reason.NO_CONSUMER,
            f"no {worker} is reading the {stage.value} queue",
            f"start one (`ragline serve {worker}`, or scale its Deployment up)",
        )
    if job.last_error:
        return Diagnosis(
            job,
            stage,
            Reason.RETRYING,
            f"its task waits for a retry (attempt {job.attempts}) after: {job.last_error}",
            "nothing: it runs again by itself, and is dead-lettered once its attempts run out",
        )
    return Diagnosis(
        job,
        stage,
        Reason.TASK_MISSING,
        f"its {stage.value} task is missing: {seen.consumers} {worker}(s) read the queue, and "
        "the task is neither retrying nor dead-lettered (was the broker's data lost?)",
        "ingest the document again with a new request id",
    )
