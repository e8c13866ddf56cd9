"""When a failed call is worth another attempt, and how long to wait first; no I/O here, so the sync
and async clients retry alike and only their sleeping differs."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ragline_client._errors import RaglineClientError, ResourceExhaustedError, UnavailableError


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for calls the gateway could not serve right now.

    A call is retried when it fails with UNAVAILABLE (the gateway is restarting or unreachable) or
    with RESOURCE_EXHAUSTED carrying the gateway's RetryInfo (its queue is full: the gateway says
    how long to wait, and that delay is honoured). RESOURCE_EXHAUSTED without a delay is a size
    limit, and every other error is an answer: neither is retried. Between attempts the client
    waits `initial_backoff_s`, then `multiplier` times longer each time, at most `max_backoff_s`,
    each wait shortened by up to `jitter` (a fraction) at random so that many clients do not retry
    in step. Each attempt gets the client's whole `timeout`.

    ``RetryPolicy(max_attempts=1)`` turns retries off.
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(
                f"max_attempts must be at least 1 (1: no retries), not {self.max_attempts}"
            )
        if self.initial_backoff_s < 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError(
                "backoff must satisfy 0 <= initial_backoff_s <= max_backoff_s, not "
                f"{self.initial_backoff_s} and {self.max_backoff_s}"
            )
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be at least 1, not {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction from 0 to 1, not {self.jitter}")

    def attempts(self) -> Attempts:
        """A fresh count of attempts for one call."""
        return Attempts(self)

    def delay(
        self,
        attempt: int,
        error: RaglineClientError,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before trying again after `error` ended attempt number `attempt`
        (counting from 1), or None to give up and raise `error`."""
        if attempt >= self.max_attempts:
            return None
        if isinstance(error, ResourceExhaustedError):
            return error.retry_after  # None: a size limit, which no retry can fix
        if not isinstance(error, UnavailableError):
            return None
        backoff = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return backoff * (1 - self.jitter * rand())


DEFAULT_RETRY = RetryPolicy()


class Attempts:
    """The attempts of one call so far: ``delay = attempts.after(error)`` after each failure."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._made = 1

    def after(self, error: RaglineClientError) -> float | None:
        """How long to wait before the next attempt, or None when `error` is final."""
        wait = self._policy.delay(self._made, error)
        if wait is not None:
            self._made += 1
        return wait
