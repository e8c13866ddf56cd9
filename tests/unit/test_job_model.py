"""The job state machine: which moves are allowed, which are terminal, and that nothing goes back."""

from __future__ import annotations

import itertools

import pytest

from ragline.jobs.model import ALLOWED_FROM, TERMINAL_STATES, JobState, can_move

pytestmark = pytest.mark.unit

A, R, C, F, X = (
    JobState.ACCEPTED,
    JobState.ACTIVE,
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.CANCELLED,
)

# Written out by hand from the diagram in ragline.jobs.model, not derived from ALLOWED_FROM.
ALLOWED = {
    (A, R),
    (A, C),
    (A, F),
    (A, X),
    (R, C),
    (R, F),
    (R, X),
    # An operator requeues a failed job's dead letter (reopen), or cancels the failed job; or
    # its last chunk lands after all (a redelivered copy of its dead-lettered task did the work).
    (F, R),
    (F, X),
    (F, C),
}

ALL_PAIRS = list(itertools.product(JobState, repeat=2))


@pytest.mark.parametrize(
    ("current", "target"), ALL_PAIRS, ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS]
)
def test_every_pair_of_states(current: JobState, target: JobState) -> None:
    assert can_move(current, target) is ((current, target) in ALLOWED)


def test_the_table_covers_every_state() -> None:
    assert set(ALLOWED_FROM) == set(JobState)
    assert len(ALL_PAIRS) == 25


def test_terminal_states() -> None:
    assert {s for s in JobState if s.is_terminal} == {C, F, X}
    assert frozenset({C, F, X}) == TERMINAL_STATES
    assert not A.is_terminal
    assert not R.is_terminal


@pytest.mark.parametrize("terminal", [C, X])
def test_completed_and_cancelled_never_move(terminal: JobState) -> None:
    assert [t for t in JobState if can_move(terminal, t)] == []


def test_failed_moves_to_active_completed_or_cancelled() -> None:
    assert [t for t in JobState if can_move(F, t)] == [R, C, X]


def test_a_job_that_may_complete_may_instead_end_cancelled() -> None:
    # The version switch ends a job cancelled instead of completed when its document was
    # deleted meanwhile: that must be allowed from wherever completing is.
    assert ALLOWED_FROM[C] <= ALLOWED_FROM[X]


@pytest.mark.parametrize("state", list(JobState))
def test_no_state_moves_to_itself(state: JobState) -> None:
    assert not can_move(state, state)


def test_only_a_failed_job_leaves_a_terminal_state() -> None:
    order = {A: 0, R: 1, C: 2, F: 2, X: 2}
    backwards = {
        (current, target)
        for current, target in ALL_PAIRS
        if can_move(current, target) and order[target] <= order[current]
    }
    assert backwards == {(F, R), (F, C), (F, X)}
    assert not any(can_move(s, A) for s in JobState)


def test_state_values_are_the_lower_case_names() -> None:
    assert [s.value for s in JobState] == ["accepted", "active", "completed", "failed", "cancelled"]
    assert JobState("failed") is F
