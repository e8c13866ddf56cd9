"""The job store and the crash-loop counter as the stage runner sees them (ragline.stage.runner's
StageJobs and SoloRunCounter), in memory, for the runner's unit tests beside
ragline.broker.memory. They keep the real ones' rules: the job state machine (ALLOWED_FROM), a
FAILED job's error as it failed, NotFound for an unknown job."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable

from ragline.errors import NotFound
from ragline.ids import new_id
from ragline.jobs.model import Job, JobProgress, JobState, Stage, can_move

__all__ = ["MemoryJobs", "MemorySoloRuns"]


class MemoryJobs:
    """Job records in a dict, moved by the state machine as ragline.jobs.store.JobStore moves
    them."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        # Every job id touched, in order (StageJobs.touch).
        self.touched: list[str] = []

    def create(self, document_id: str = "doc") -> str:
        """A new ACCEPTED job's id."""
        now = time.time()
        job = Job(
            job_id=new_id(),
            document_id=document_id,
            document_version=1,
            state=JobState.ACCEPTED,
            progress=JobProgress(),
            create_time=now,
            update_time=now,
        )
        self.jobs[job.job_id] = job
        return job.job_id

    def get(self, job_id: str) -> Job:
        return self.jobs[job_id]

    def move(self, job_id: str, target: JobState, **fields: object) -> bool:
        """As JobStore.move: only where the state machine allows, writing `fields` with it."""
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} does not exist")
        if not can_move(job.state, target):
            return False
        now = time.time()
        finish = now if target.is_terminal else 0.0
        self.jobs[job_id] = dataclasses.replace(
            job, state=target, update_time=now, finish_time=finish, **fields
        )
        return True

    # -- StageJobs ----------------------------------------------------------------------------
    async def get_many(self, job_ids: Iterable[str]) -> list[Job | None]:
        return [self.jobs.get(j) for j in job_ids]

    async def states(self, job_ids: Iterable[str]) -> list[JobState | None]:
        return [j.state if (j := self.jobs.get(i)) else None for i in job_ids]

    async def note_error(self, job_id: str, stage: Stage, error: str, attempts: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            self.jobs[job_id] = dataclasses.replace(
                job,
                last_error=error,
                last_error_stage=stage,
                attempts=attempts,
                update_time=time.time(),
            )

    async def fail(self, job_id: str, stage: Stage, error: str, attempts: int) -> bool:
        return self.move(
            job_id, JobState.FAILED, last_error=error, last_error_stage=stage, attempts=attempts
        )

    async def touch(self, job_ids: Iterable[str]) -> None:
        self.touched.extend(job_ids)


class MemorySoloRuns:
    """Runs on their own by message id, as ragline.stage.solo_runs.SoloRuns counts them. One
    counter shared by the runners of a test outlives any of them, as Redis outlives a worker."""

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}

    async def start(self, message_id: str) -> int:
        self.runs[message_id] = self.runs.get(message_id, 0) + 1
        return self.runs[message_id]

    async def end(self, message_id: str) -> None:
        self.runs.pop(message_id, None)
