"""The consumer loop every stage runs: read a batch, handle it, settle each message.

Settling is where the promises live:
- a task is acked only after its handler returned, i.e. after its output was published or its
  side effect committed;
- a failed task is retried later with backoff (a new message, attempt + 1) or, when the error is
  permanent or attempts are spent, dead-lettered with its reason and its job marked FAILED;
- a message handed out too often without being settled (it kills its worker) is dead-lettered
  before it is handled again;
- tasks of jobs already finished (failed or cancelled) are dropped without work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ragline.broker.base import Broker, DeadLetter, Delivery
from ragline.errors import BrokerUnavailable, PermanentTaskError, RaglineError, StoreUnavailable
from ragline.jobs.model import JobState, Stage
from ragline.jobs.store import JobStore
from ragline.retry import RetryPolicy
from ragline.stage import envelope
from ragline.v1 import queue_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """A decoded message and the delivery it came in."""

    delivery: Delivery
    envelope: queue_pb2.TaskEnvelope

    @property
    def job_id(self) -> str:
        return self.envelope.job_id

    @property
    def attempt(self) -> int:
        return max(1, self.envelope.attempt)


class StageHandler(Protocol):
    """One stage's work on a batch of tasks."""

    stage: Stage

    async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
        """Does the work for each task; returns, per task, None when done or the error it met.

        Raising fails every task of the batch with that error.
        """
        ...


class StageRunner:
    """Runs one stage's consumer loop until stopped."""

    def __init__(
        self,
        handler: StageHandler,
        broker: Broker,
        jobs: JobStore,
        *,
        policy: RetryPolicy | None = None,
        batch_size: int = 64,
        read_timeout_s: float = 1.0,
    ) -> None:
        self._handler = handler
        self._broker = broker
        self._jobs = jobs
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._read_timeout_s = read_timeout_s
        self._stopping = asyncio.Event()
        self.queue = envelope.queue_name(handler.stage)

    def stop(self) -> None:
        """Asks the loop to finish the batch in hand and return."""
        self._stopping.set()

    async def run(self) -> None:
        log.info("%s stage consuming queue %r", self._handler.stage.value, self.queue)
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                deliveries = await self._broker.read(
                    self.queue, self._batch_size, self._read_timeout_s
                )
                if deliveries:
                    await self.process(deliveries)
                backoff = 0.5
            except RaglineError as exc:
                if not exc.retryable:
                    raise
                # The broker or the job store is away: what was read stays unacked and comes
                # back; wait, then read again.
                log.warning(
                    "%s stage: %s; retrying in %.1fs", self._handler.stage.value, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        log.info("%s stage stopped consuming", self._handler.stage.value)

    async def process(self, deliveries: Sequence[Delivery]) -> None:
        """Handles and settles one batch."""
        tasks: list[Task] = []
        for d in deliveries:
            try:
                env = envelope.decode(d.body)
            except PermanentTaskError as exc:
                await self._dead_letter(d, "", exc, attempts=1)
                continue
            if d.delivery_count > self._policy.maximum_deliveries:
                exc2 = PermanentTaskError(
                    f"delivered {d.delivery_count} times without finishing: it likely crashes "
                    "its worker"
                )
                await self._give_up(Task(d, env), exc2)
                continue
            tasks.append(Task(d, env))
        tasks = await self._drop_finished(tasks)
        if not tasks:
            return
        try:
            outcomes = list(await self._handler.handle(tasks))
        except (BrokerUnavailable, StoreUnavailable):
            # The broker or the job store went away mid-batch: leave the batch unacked so it is
            # delivered again, rather than spend the tasks' attempts on an outage.
            raise
        except Exception as exc:
            log.exception("%s stage: the batch failed", self._handler.stage.value)
            outcomes = [exc] * len(tasks)
        done = [t.delivery for t, o in zip(tasks, outcomes, strict=True) if o is None]
        await self._broker.ack(done)
        for task, outcome in zip(tasks, outcomes, strict=True):
            if outcome is not None:
                await self._settle_failure(task, outcome)

    async def _drop_finished(self, tasks: list[Task]) -> list[Task]:
        if not tasks:
            return tasks
        jobs = await self._jobs.get_many({t.job_id for t in tasks})
        finished = {
            j.job_id
            for j in jobs
            if j is not None and j.state in (JobState.FAILED, JobState.CANCELLED)
        }
        # A job whose record expired or never existed has no one waiting for it either.
        known = {j.job_id for j in jobs if j is not None}
        drop = [t for t in tasks if t.job_id in finished or t.job_id not in known]
        if drop:
            await self._broker.ack([t.delivery for t in drop])
        return [t for t in tasks if t.job_id not in finished and t.job_id in known]

    async def _settle_failure(self, task: Task, exc: BaseException) -> None:
        stage = self._handler.stage.value
        if self._policy.should_retry(exc, task.attempt):
            delay = self._policy.delay_s(task.attempt)
            log.warning(
                "%s stage: job %s attempt %d failed (%s); retrying in %.1fs",
                stage,
                task.job_id,
                task.attempt,
                _describe(exc),
                delay,
            )
            await self._jobs.note_error(
                task.job_id, self._handler.stage, _describe(exc), task.attempt
            )
            await self._broker.retry_later(
                task.delivery, envelope.next_attempt(task.envelope), delay
            )
            return
        await self._give_up(task, exc)

    async def _give_up(self, task: Task, exc: BaseException) -> None:
        log.error(
            "%s stage: job %s failed after %d attempt(s): %s; moved to the dead-letter queue",
            self._handler.stage.value,
            task.job_id,
            task.attempt,
            _describe(exc),
        )
        await self._dead_letter(task.delivery, task.job_id, exc, task.attempt)
        await self._jobs.fail(task.job_id, self._handler.stage, _describe(exc), task.attempt)

    async def _dead_letter(
        self, delivery: Delivery, job_id: str, exc: BaseException, attempts: int
    ) -> None:
        now = time.time()
        record = DeadLetter(
            queue=delivery.queue,
            body=delivery.body,
            job_id=job_id,
            error_type=type(exc).__name__,
            error_message=str(exc),
            attempts=attempts,
            first_failure_time=now,
            last_failure_time=now,
        )
        await self._broker.dead_letter(delivery, record)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
