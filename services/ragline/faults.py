"""Deliberate faults, for resilience tests and chaos drills. Off unless RAGLINE_FAULTS is set.

RAGLINE_FAULTS is a comma-separated list of rules `STAGE:KIND:MARKER[:N]`. A rule fires when the
text a stage works on (the document for the chunker, chunk texts for the embedder and indexer)
contains MARKER. The rules live outside the stages' code: `ragline.stage.faulty` wraps a
stage's handler in them only when RAGLINE_FAULTS is set.

    transient  raise a retryable error while the task's attempt is at most N (default 1)
    permanent  raise a permanent error (the task is dead-lettered at once)
    poison     raise an unexpected error for the whole batch the marker is in, every time
    crash      end the process at once (os._exit), as a segfault or OOM kill would
    stall      hold the task N seconds (default 1) in a worker thread before the work, as a
               very long cut or model call would; the event loop keeps serving meanwhile
    crash_after_commit
               (stage "gateway", marker in a document) end the gateway at once after the script
               that records new jobs and before anything is published or answered: a gateway
               dying between the two steps of intake

Example: RAGLINE_FAULTS="embed:transient:FLAKY:2,chunk:crash:BOOM,gateway:crash_after_commit:GONE"
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from ragline.errors import ConfigurationError, PermanentTaskError, TransientError

log = logging.getLogger(__name__)

KINDS = ("transient", "permanent", "poison", "crash", "stall", "crash_after_commit")


class InjectedFault(Exception):
    """The unexpected error a `poison` rule raises."""


@dataclass(frozen=True)
class FaultRule:
    stage: str
    kind: str
    marker: str
    times: int = 1


def parse_faults(spec: str) -> list[FaultRule]:
    """The rules in a RAGLINE_FAULTS value; ConfigurationError for a malformed one."""
    rules = []
    for raw in filter(None, (part.strip() for part in spec.split(","))):
        parts = raw.split(":")
        if len(parts) not in (3, 4) or parts[1] not in KINDS or not parts[2]:
            raise ConfigurationError(
                f"RAGLINE_FAULTS rule {raw!r} is not STAGE:KIND:MARKER[:N] with KIND one of "
                f"{', '.join(KINDS)}"
            )
        rules.append(
            FaultRule(parts[0], parts[1], parts[2], int(parts[3]) if len(parts) == 4 else 1)
        )
    return rules


class Faults:
    """The rules for one stage."""

    def __init__(self, spec: str, stage: str) -> None:
        self._rules = [r for r in parse_faults(spec) if r.stage == stage]
        if self._rules:
            log.warning("FAULT INJECTION IS ON for the %s stage: %s", stage, self._rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def check(self, texts: Iterable[str], attempt: int = 1) -> float:
        """Raises (or exits) as the first rule whose marker appears in `texts` says; returns the
        seconds a matching stall rule asks the caller to hold the task (0 for none)."""
        if not self._rules:
            return 0.0
        joined = "\n".join(texts)
        for rule in self._rules:
            if rule.marker not in joined:
                continue
            if rule.kind == "crash":
                log.error("injected crash (marker %s)", rule.marker)
                os._exit(70)
            if rule.kind == "stall":
                log.warning("injected stall of %ds (marker %s)", rule.times, rule.marker)
                return float(rule.times)
            if rule.kind == "transient" and attempt <= rule.times:
                raise TransientError(
                    f"injected transient fault (marker {rule.marker}, attempt {attempt})"
                )
            if rule.kind == "permanent":
                raise PermanentTaskError(f"injected permanent fault (marker {rule.marker})")
            if rule.kind == "poison":
                raise InjectedFault(f"injected poison (marker {rule.marker})")
        return 0.0

    def crash_after_commit(self, texts: Iterable[str]) -> None:
        """Ends the process (os._exit) when a crash_after_commit rule's marker is in `texts`."""
        if not self._rules:
            return
        joined = "\n".join(texts)
        for rule in self._rules:
            if rule.kind == "crash_after_commit" and rule.marker in joined:
                log.error("injected crash after the commit (marker %s)", rule.marker)
                os._exit(70)
