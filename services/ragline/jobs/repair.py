"""Finding stuck jobs and repairing those whose task is missing: the gateways' repair loop and
`ragline doctor`'s look at the job store and the broker.

A job whose task the broker lost (diagnosis "task missing", ragline.jobs.doctor) is not left: its
chunk task, kept in the job store beside its document (ragline.jobs.keys), is published again,
whatever stage the job waits on. Doing the job again from the start is safe because every stage
is idempotent on a repeat: chunking the same document with the same settings makes the same
chunks, progress is kept in bitmaps (a chunk counts once however often it is marked), chunk rows
are upserted under a key of document, version and chunk index, and making a version live is a
no-op the second time.

Publishing again is conservative, since a stuck job may merely be queued behind a backlog: only a
job unchanged for RAGLINE_STUCK_AFTER_S whose queues (chunk up to the stage it waits on) hold no
message at all counts as missing its task, and the job store's script republishes only if the job
is still unchanged, touching it in the same step, so it is not repaired again for another
RAGLINE_STUCK_AFTER_S. After RAGLINE_MAX_REPAIRS repairs of one job, or for a job whose document
the store does not hold (accepted before documents were kept there), the job is failed with an
error saying why, rather than left.

Every gateway runs the loop (Repairer.run); a short lease in Redis lets one sweep at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, replace

from ragline.broker.base import BrokerAdapter, dead_letter_batches
from ragline.errors import TransientError
from ragline.jobs.doctor import Diagnosis, Reason, StageFacts, diagnose
from ragline.jobs.model import Stage
from ragline.jobs.store import JobStore, TaskTarget
from ragline.redis_client import answered
from ragline.stage import envelope

log = logging.getLogger(__name__)

# Most dead letters read per stage to match them with stuck jobs.
MAX_DEAD_LETTERS = 10_000
# Most stuck jobs one sweep looks at (the longest idle first).
SWEEP_LIMIT = 1000


@dataclass(frozen=True)
class Examination:
    """The stuck jobs found: a diagnosis for each looked at, and how many there are in all."""

    diagnoses: list[Diagnosis]
    total: int
    # The chunk task kept for each job (ragline.jobs.store.JobStore.kept_tasks).
    kept: dict[str, bytes]
    # When the jobs were found stuck: a repair needs them unchanged since.
    cutoff: float


@dataclass(frozen=True)
class Repair:
    """What a sweep did about one job whose task was missing."""

    diagnosis: Diagnosis
    # "republished", "failed" or "left" (it changed meanwhile).
    outcome: str
    message: str


async def dead_letters(broker: BrokerAdapter, stage: Stage) -> dict[str, str]:
    """Dead-letter errors by job id, for the jobs with a record in the stage's dead-letter
    queue (at most MAX_DEAD_LETTERS)."""
    letters: dict[str, str] = {}
    async for page in dead_letter_batches(broker, envelope.queue_name(stage)):
        for letter in page:
            if letter.job_id:
                letters[letter.job_id] = f"{letter.error_type}: {letter.error_message}"
        if len(letters) >= MAX_DEAD_LETTERS:
            break
    return letters


async def stage_facts(broker: BrokerAdapter, stage: Stage, *, letters: bool = True) -> StageFacts:
    """What the broker says of one stage's queue: consumers, depth and (with `letters`) dead
    letters."""
    queue = envelope.queue_name(stage)
    return StageFacts(
        consumers=await broker.consumer_count(queue),
        dead_letters=await dead_letters(broker, stage) if letters else {},
        depth=await broker.depth(queue),
    )


async def examine(
    jobs: JobStore,
    broker: BrokerAdapter,
    stuck_after_s: float,
    *,
    limit: int = SWEEP_LIMIT,
    max_repairs: int = 3,
    all_letters: bool = True,
) -> Examination:
    """Diagnoses up to `limit` stuck jobs, the longest idle first.

    Without `all_letters`, dead-letter queues are read only for the stages where a job's task
    looks missing (a dead letter then rules a repair out): listing them is the costly part, and
    on RabbitMQ it takes their messages off the queue for a moment.
    """
    cutoff = time.time() - stuck_after_s
    total = await jobs.count_stuck(stuck_after_s)
    if not total:
        return Examination([], 0, {}, cutoff)
    ids = await jobs.stuck_jobs(stuck_after_s, limit=limit)
    found = [j for j in await jobs.get_many(ids) if j is not None and not j.state.is_terminal]
    # The queues are read after the jobs: a task that moved on between the two reads has touched
    # its job, which the repair script then sees.
    facts = {stage: await stage_facts(broker, stage, letters=all_letters) for stage in Stage}
    kept = await jobs.kept_tasks(j.job_id for j in found)

    def diagnoses() -> list[Diagnosis]:
        return [diagnose(j, facts, max_repairs=max_repairs, kept=j.job_id in kept) for j in found]

    found_now = diagnoses()
    if not all_letters:
        missing = {d.stage for d in found_now if d.reason is Reason.TASK_MISSING}
        for stage in missing:
            facts[stage] = replace(facts[stage], dead_letters=await dead_letters(broker, stage))
        if missing:
            found_now = diagnoses()
    return Examination(found_now, total, kept, cutoff)


class Repairer:
    """Publishes missing tasks again, a sweep at a time (see the module's docstring)."""

    def __init__(
        self,
        jobs: JobStore,
        broker: BrokerAdapter,
        target: TaskTarget,
        *,
        stuck_after_s: float,
        max_repairs: int = 3,
        every_s: float | None = None,
    ) -> None:
        """`target` is where new jobs' chunk tasks go (the gateway's outbox target): the chunk
        stream, or the outbox a relay publishes to RabbitMQ from. A sweep runs every `every_s`
        (a quarter of `stuck_after_s` by default, between 0.25 s and a minute)."""
        self._jobs = jobs
        self._broker = broker
        self._target = target
        self._stuck_after_s = stuck_after_s
        self._max_repairs = max_repairs
        self.every_s = every_s if every_s is not None else min(60.0, max(0.25, stuck_after_s / 4))
        self._token = uuid.uuid4().hex
        self._stopping = asyncio.Event()

    async def sweep(self) -> list[Repair]:
        """One look at the stuck jobs, repairing those whose task is missing."""
        found = await examine(
            self._jobs,
            self._broker,
            self._stuck_after_s,
            max_repairs=self._max_repairs,
            all_letters=False,
        )
        return await self.repair(found)

    async def repair(self, found: Examination) -> list[Repair]:
        """Repairs the jobs of `found` whose task is missing."""
        done: list[Repair] = []
        for d in found.diagnoses:
            if d.reason is Reason.TASK_MISSING:
                done.append(await self._repair_one(d, found.kept.get(d.job.job_id), found.cutoff))
        return done

    async def _repair_one(self, d: Diagnosis, task: bytes | None, cutoff: float) -> Repair:
        job = d.job
        result = await self._jobs.republish(
            job.job_id,
            envelope.fresh_start(task) if task else b"",
            unchanged_since=cutoff,
            max_repairs=self._max_repairs,
            target=self._target,
        )
        if result.outcome == "republished":
            message = (
                f"published its chunk task again (repair {result.repairs} of at most "
                f"{self._max_repairs})"
            )
            log.warning(
                "job %s (document %s, version %d) waits on the %s stage: %s; %s",
                job.job_id,
                job.document_id,
                job.document_version,
                d.stage.value,
                d.detail,
                message,
            )
            return Repair(d, "republished", message)
        if result.outcome == "left":
            return Repair(d, "left", f"left alone: {result.why} since it was found stuck")
        if result.outcome == "not kept":
            error = (
                f"its {d.stage.value} task was lost (no queue holds it), and its document was "
                "accepted before ragline kept documents in the job store, so the task cannot be "
                "published again: ingest the document again"
            )
        else:
            error = (
                f"its {d.stage.value} task was lost again after it was published again "
                f"{result.repairs} time(s) (RAGLINE_MAX_REPAIRS): check the broker's "
                "persistence, then ingest the document again"
            )
        await self._jobs.fail(job.job_id, d.stage, error, job.attempts)
        log.warning("job %s failed: %s", job.job_id, error)
        return Repair(d, "failed", f"failed it: {error}")

    async def _take_lease(self) -> bool:
        """Whether this gateway sweeps now: a lease of one sweep interval, so gateways take
        turns, and one that dies mid-sweep holds no one up for longer."""
        taken = await answered(
            self._jobs.redis.set(
                self._jobs.keys.repair_lease,
                self._token,
                nx=True,
                px=max(1, int(self.every_s * 1000 * 0.9)),
            ),
            "the job store",
        )
        return bool(taken)

    async def run(self) -> None:
        """Sweeps every `every_s` until stop(); rides out broker and Redis outages."""
        while not self._stopping.is_set():
            try:
                if await self._take_lease():
                    await self.sweep()
            except TransientError as exc:
                log.warning("the stuck-job repair will try again: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.every_s)

    def stop(self) -> None:
        self._stopping.set()
