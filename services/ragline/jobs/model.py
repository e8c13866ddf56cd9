"""The job state machine and the job record, free of any I/O.

    ACCEPTED ──▶ ACTIVE ──▶ COMPLETED ◀── FAILED (every chunk indexed after all)
        │           ├─────▶ FAILED ──(requeued from the dead-letter queue)──▶ ACTIVE
        └───────────┴─────▶ CANCELLED      (also ACCEPTED ──▶ FAILED, FAILED ──▶ CANCELLED)

States only move forward, so a late or redelivered message can never drag a finished job back;
the one way back is an operator requeueing a failed job's dead letter. A failed job still
completes when its last chunk lands (a redelivered copy of the task that was dead-lettered did
the work): its version is then live and whole, and calling it failed would be wrong.

This table is the one rule: the job store's scripts take it as arguments (see
ragline.jobs.store), except the first progress mark moving ACCEPTED to ACTIVE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ragline.tenants import DEFAULT_TENANT


class JobState(enum.StrEnum):
    ACCEPTED = "accepted"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


class Stage(enum.StrEnum):
    CHUNK = "chunk"
    EMBED = "embed"
    INDEX = "index"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})

# For each target state, the states a job may move to it from.
ALLOWED_FROM: dict[JobState, frozenset[JobState]] = {
    JobState.ACCEPTED: frozenset(),
    JobState.ACTIVE: frozenset({JobState.ACCEPTED, JobState.FAILED}),
    JobState.COMPLETED: frozenset({JobState.ACCEPTED, JobState.ACTIVE, JobState.FAILED}),
    JobState.FAILED: frozenset({JobState.ACCEPTED, JobState.ACTIVE}),
    JobState.CANCELLED: frozenset({JobState.ACCEPTED, JobState.ACTIVE, JobState.FAILED}),
}


def can_move(current: JobState, target: JobState) -> bool:
    """Whether a job in `current` may move to `target`."""
    return current in ALLOWED_FROM[target]


@dataclass(frozen=True)
class JobProgress:
    chunks_total: int = 0
    chunks_embedded: int = 0
    chunks_indexed: int = 0


@dataclass(frozen=True)
class Job:
    """A job as the job store holds it. Times are epoch seconds; 0 means unset."""

    job_id: str
    document_id: str
    document_version: int
    state: JobState
    progress: JobProgress
    tenant: str = DEFAULT_TENANT
    last_error: str = ""
    last_error_stage: Stage | None = None
    attempts: int = 1
    request_id: str = ""
    create_time: float = 0.0
    update_time: float = 0.0
    finish_time: float = 0.0
    # How many times its lost chunk task was published again (ragline.jobs.repair).
    repairs: int = 0

    def is_stuck(self, now: float, after_s: float) -> bool:
        """Unfinished, and nothing has changed it for `after_s` seconds (see RAGLINE_STUCK_AFTER_S)."""
        return not self.state.is_terminal and now - self.update_time >= after_s
