"""Why a job is stuck, from what the job store and the broker say; pure logic.

A job is stuck when it is unfinished and nothing has changed it for RAGLINE_STUCK_AFTER_S. The
stage it waits on follows from its progress, and the reason from the queues, checked in this
order. "Its queues" are the queues from chunk up to the stage it waits on: a chunk task still
there (say, redelivered after a crash) makes the job's later tasks again.

    reason          what was seen                                   what to do
    dead-lettered   the job's task is in the stage's dead-letter    requeue or purge it
                    queue, yet the job was not failed
    no consumer     no worker reads the stage's queue               start one
    retrying        its queues hold messages, and the job carries   wait: it retries by itself,
                    a retryable error                               and is dead-lettered when
                                                                    its attempts run out
    queued          its queues hold messages (waiting, in flight    wait, or scale the stage up:
                    or due for a retry), one of which may be its    it is behind a backlog
                    task
    task missing    a worker reads the stage's queue, and its       nothing: the gateways'
                    queues are empty                                repair publishes its chunk
                                                                    task again (ragline.jobs.
                                                                    repair), or fails the job
                                                                    when that cannot help

"Empty" is the broker's count of messages waiting, delayed and (Redis Streams) delivered but not
yet acked. RabbitMQ does not count messages delivered to a consumer and not yet acked; a worker
therefore touches the jobs of the tasks in its hands while it works (ragline.stage.runner), so
such a job is not stuck at all. A task waiting in a consumer's prefetch buffer longer than
RAGLINE_STUCK_AFTER_S still reads as missing there: its repair only repeats work the stages
absorb.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ragline.jobs.model import Job, JobState, Stage

__all__ = [
    "Diagnosis",
    "Reason",
    "StageFacts",
    "diagnose",
    "stages_through",
    "waiting_stage",
]

_WORKER = {Stage.CHUNK: "chunker", Stage.EMBED: "embedder", Stage.INDEX: "indexer"}
_PIPELINE = (Stage.CHUNK, Stage.EMBED, Stage.INDEX)


class Reason(enum.StrEnum):
    DEAD_LETTERED = "dead-lettered"
    NO_CONSUMER = "no consumer"
    RETRYING = "retrying"
    QUEUED = "queued"
    TASK_MISSING = "task missing"


@dataclass(frozen=True)
class StageFacts:
    """What the broker says of one stage's queue."""

    consumers: int
    # Dead-letter errors by job id, for the jobs that have a record in the stage's queue.
    dead_letters: dict[str, str]
    # Messages the queue holds: waiting, due for a retry, or (where the broker counts them)
    # delivered and not yet acked.
    depth: int = 0


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


def stages_through(stage: Stage) -> tuple[Stage, ...]:
    """The stages from chunk up to `stage`: the queues that may still hold work of a job that
    waits on `stage`."""
    return _PIPELINE[: _PIPELINE.index(stage) + 1]


def diagnose(
    job: Job, facts: dict[Stage, StageFacts], *, max_repairs: int = 3, kept: bool = True
) -> Diagnosis:
    """Why `job` makes no progress, given the facts of every stage.

    `max_repairs` is how often a lost task is published again before the job is failed
    (RAGLINE_MAX_REPAIRS), `kept` whether the job store still holds the job's document (jobs
    accepted before documents were kept there cannot be repaired); both only shape the advice
    for a missing task.
    """
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
    queues = stages_through(stage)
    held = sum(facts[s].depth for s in queues)
    if held and job.last_error:
        return Diagnosis(
            job,
            stage,
            Reason.RETRYING,
            f"its task waits for a retry (attempt {job.attempts}) after: {job.last_error}",
            "nothing: it runs again by itself, and is dead-lettered once its attempts run out",
        )
    if held:
        names = " and ".join(s.value for s in queues)
        return Diagnosis(
            job,
            stage,
            Reason.QUEUED,
            f"queued behind {held} task(s) on the {names} queue(s), one of which may be its own",
            f"wait, or add {worker}s if the backlog does not shrink; a task found missing is "
            "only published again once these queues are empty",
        )
    before = f" (published again {job.repairs} time(s) already)" if job.repairs else ""
    detail = (
        f"its {stage.value} task is missing{before}: {seen.consumers} {worker}(s) read the "
        "queue, and no queue it could wait in holds anything (was the broker's data lost?)"
    )
    if not kept:
        advice = (
            "its document is not kept in the job store (it was accepted before ragline kept "
            "documents there), so its task cannot be published again: the gateways fail the "
            "job; ingest the document again"
        )
    elif job.repairs >= max_repairs:
        advice = (
            f"it was published again {job.repairs} time(s) (RAGLINE_MAX_REPAIRS) and lost "
            "each time: the gateways fail the job; check the broker's persistence, then ingest "
            "the document again"
        )
    else:
        advice = (
            "nothing: the gateways publish its chunk task again from the job store (every "
            "stage takes a repeat in its stride); `ragline doctor --repair` does it now"
        )
    return Diagnosis(job, stage, Reason.TASK_MISSING, detail, advice)
