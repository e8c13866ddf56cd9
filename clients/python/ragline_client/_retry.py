"""When a failed call is worth another attempt, and how long to wait first; no I/O here, so the sync
and async clients retry alike and only their sleeping differs."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ragline_client._errors import RaglineClientError, ResourceExhaustedError


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for calls the gateway could not serve right now (the names are those of
    ragline.retry.RetryPolicy, the stages' own, and of Temporal's).

    A call is retried when its error is `retryable`: UNAVAILABLE (the gateway is restarting or
    unreachable; not when the TLS settings are the cause) or RESOURCE_EXHAUSTED carrying the
    gateway's RetryInfo (its queue is full). After UNAVAILABLE the client waits
    `initial_interval_s`, then `backoff_coefficient` times longer each time, at most
    `maximum_interval_s`, each wait shortened by up to `jitter` (a fraction) at random so that
    many clients do not retry in step. After RESOURCE_EXHAUSTED it waits the delay the gateway
    asked for; a delay over `maximum_interval_s` is not waited out but raised, with the delay as
    the error's `retry_after`. RESOURCE_EXHAUSTED without a delay is a size limit, and every other
    error is an answer: neither is retried. Each attempt gets the client's whole `timeout`.

    ``RetryPolicy(maximum_attempts=1)`` turns retries off.
    """

    maximum_attempts: int = 5
    initial_interval_s: float = 0.2
    maximum_interval_s: float = 5.0
    backoff_coefficient: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.maximum_attempts < 1:
            raise ValueError(
                f"maximum_attempts must be at least 1 (1: no retries), not {self.maximum_attempts}"
            )
        if self.initial_interval_s < 0 or self.maximum_interval_s < self.initial_interval_s:
            raise ValueError(
                "backoff must satisfy 0 <= initial_interval_s <= maximum_interval_s, not "
                f"{self.initial_interval_s} and {self.maximum_interval_s}"
            )
        if self.backoff_coefficient < 1:
            raise ValueError(
                f"backoff_coefficient must be at least 1, not {self.backoff_coefficient}"
            )
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
        if attempt >= self.maximum_attempts or not error.retryable:
            return None
        if isinstance(error, ResourceExhaustedError):
            after = error.retry_after
            return after if after is not None and after <= self.maximum_interval_s else None
        backoff = min(
            self.maximum_interval_s,
            self.initial_interval_s * self.backoff_coefficient ** (attempt - 1),
        )
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
