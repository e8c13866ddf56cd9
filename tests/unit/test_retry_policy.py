"""RetryPolicy: exponential backoff with a cap and bounded jitter, and which errors retry."""

from __future__ import annotations

import random

import pytest

from ragline.config import Settings
from ragline.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DependencyUnavailable,
    InvalidArgument,
    NotFound,
    PermanentTaskError,
    ResourceExhausted,
    StoreUnavailable,
    TransientError,
)
from ragline.retry import RetryPolicy

pytestmark = pytest.mark.unit


def test_without_jitter_delays_double_each_attempt() -> None:
    policy = RetryPolicy(initial_interval_s=0.5, backoff_coefficient=2.0, jitter=0.0)
    assert [policy.delay_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_the_coefficient_sets_the_growth() -> None:
    policy = RetryPolicy(initial_interval_s=1.0, backoff_coefficient=3.0, jitter=0.0)
    assert [policy.delay_s(n) for n in (1, 2, 3, 4)] == [1.0, 3.0, 9.0, 27.0]


def test_delays_are_capped_at_the_maximum_interval() -> None:
    policy = RetryPolicy(initial_interval_s=1.0, maximum_interval_s=10.0, jitter=0.0)
    delays = [policy.delay_s(n) for n in range(1, 12)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays[4:] == [10.0] * 7
    # Far beyond the cap the arithmetic must not blow up either.
    assert policy.delay_s(500) == 10.0


def test_attempt_zero_or_below_counts_as_the_first() -> None:
    policy = RetryPolicy(initial_interval_s=2.0, jitter=0.0)
    assert policy.delay_s(0) == 2.0
    assert policy.delay_s(-3) == 2.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 7, 20])
def test_jitter_stays_within_its_bounds(attempt: int) -> None:
    policy = RetryPolicy(initial_interval_s=1.0, maximum_interval_s=30.0, jitter=0.25)
    base = min(1.0 * 2.0 ** (attempt - 1), 30.0)
    rng = random.Random(1234 + attempt)
    delays = [policy.delay_s(attempt, rng) for _ in range(2000)]
    assert all(base * 0.75 <= d <= base * 1.25 for d in delays)
    # Jitter actually spreads the delays over most of the window, both sides of the base.
    assert min(delays) < base * 0.8
    assert max(delays) > base * 1.2
    assert len(set(delays)) > 1900


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy()
    first = [policy.delay_s(n, random.Random(7)) for n in range(1, 6)]
    second = [policy.delay_s(n, random.Random(7)) for n in range(1, 6)]
    assert first == second


def test_capped_delay_with_jitter_never_exceeds_cap_times_one_plus_jitter() -> None:
    policy = RetryPolicy(initial_interval_s=1.0, maximum_interval_s=5.0, jitter=0.2)
    rng = random.Random(99)
    delays = [policy.delay_s(30, rng) for _ in range(1000)]
    assert max(delays) <= 6.0
    assert min(delays) >= 4.0


def test_delays_are_never_negative_even_with_full_jitter() -> None:
    policy = RetryPolicy(jitter=1.0)
    rng = random.Random(3)
    assert all(policy.delay_s(1, rng) >= 0.0 for _ in range(1000))


def test_defaults() -> None:
    policy = RetryPolicy()
    assert policy.initial_interval_s == 1.0
    assert policy.backoff_coefficient == 2.0
    assert policy.maximum_interval_s == 60.0
    assert policy.maximum_attempts == 5
    assert policy.maximum_deliveries == 5
    assert 0 < policy.jitter < 1


@pytest.mark.parametrize(
    "exc",
    [
        InvalidArgument("content", "is empty"),
        PermanentTaskError("bad PDF"),
        NotFound("no such job"),
        ResourceExhausted("too big"),
        ConfigurationError("set X"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_non_retryable_ragline_errors_never_retry(exc: Exception) -> None:
    policy = RetryPolicy(maximum_attempts=10)
    assert [policy.should_retry(exc, n) for n in range(1, 11)] == [False] * 10


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("later"),
        BrokerUnavailable("down"),
        StoreUnavailable("down"),
        DependencyUnavailable("down"),
        RuntimeError("who knows"),
        ValueError("unknown"),
        OSError("disk"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_and_unknown_errors_retry_until_maximum_attempts(exc: Exception) -> None:
    policy = RetryPolicy(maximum_attempts=4)
    assert [policy.should_retry(exc, n) for n in range(1, 7)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_one_attempt_means_no_retry() -> None:
    assert not RetryPolicy(maximum_attempts=1).should_retry(TransientError("x"), 1)


def test_a_sound_policy_has_no_problems() -> None:
    assert RetryPolicy().problems() == []


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("RAGLINE_RETRY_INITIAL_DELAY_S", "-1", "must not be negative"),
        ("RAGLINE_RETRY_MULTIPLIER", "0.5", "at least 1"),
        ("RAGLINE_RETRY_MAX_DELAY_S", "0.1", "below the initial delay"),
        ("RAGLINE_RETRY_MAX_ATTEMPTS", "0", "at least 1"),
        ("RAGLINE_RETRY_JITTER", "1.5", "below 1"),
        ("RAGLINE_MAX_DELIVERIES", "0", "at least 1"),
    ],
)
def test_settings_refuse_a_retry_policy_no_stage_could_run(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"{variable} .*{says}"):
        Settings.from_env({variable: value})
