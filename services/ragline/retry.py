"""What a stage does when a task fails: a declared policy, not scattered try/excepts."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ragline.errors import is_retryable

# See RetryPolicy.raw_delivery_limit.
RAW_DELIVERY_FACTOR = 4


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts (and by deliveries, for crash loops).

    Like Temporal's RetryPolicy: the delay before attempt n+1 is
    initial_interval_s * backoff_coefficient**(n-1), capped at maximum_interval_s, then spread by
    ±jitter so retries from one burst do not arrive together.
    """

    initial_interval_s: float = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval_s: float = 60.0
    maximum_attempts: int = 5
    jitter: float = 0.2
    # A message that crashed its worker this many times running alone is dead-lettered.
    maximum_deliveries: int = 5

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for every value no stage could run with; empty when sound."""
        found = []
        if self.initial_interval_s < 0:
            found.append(("initial_interval_s", "must not be negative"))
        if self.backoff_coefficient < 1:
            found.append(("backoff_coefficient", "must be at least 1 (delays never shrink)"))
        if self.maximum_interval_s < self.initial_interval_s:
            found.append(("maximum_interval_s", "must not be below the initial delay"))
        if self.maximum_attempts < 1:
            found.append(("maximum_attempts", "must be at least 1"))
        if not 0 <= self.jitter < 1:
            found.append(("jitter", "must be at least 0 and below 1"))
        if self.maximum_deliveries < 1:
            found.append(("maximum_deliveries", "must be at least 1"))
        return found

    @property
    def raw_delivery_limit(self) -> int:
        """The broker's own delivery count past which a message is dead-lettered however it
        fared alone: the backstop for the precise count of runs alone. Raw counts also grow
        for innocent messages in flight beside a crashing one (a prefetch buffer, a reclaimed
        batch), hence a multiple of `maximum_deliveries`."""
        return self.maximum_deliveries * RAW_DELIVERY_FACTOR

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (from 1)."""
        base = self.initial_interval_s * self.backoff_coefficient ** max(0, attempt - 1)
        base = min(base, self.maximum_interval_s)
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + spread))

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether a task that failed with `exc` on attempt `attempt` gets another attempt."""
        return is_retryable(exc) and attempt < self.maximum_attempts
