"""The consumer loop every stage runs: read a batch, handle it, settle each message.

Settling is where the promises live:
- a task is acked only after its handler returned, i.e. after its output was published or its
  side effect committed;
- when a batch fails as a whole, it is bisected until the failing task(s) are found, so one
  poisoned task never fails the good ones beside it;
- a failed task is retried later with backoff (a new message, attempt + 1) or, when the error is
  permanent or attempts are spent, dead-lettered with its reason and its job marked FAILED;
- a message handed out too often without being settled (it kills its worker) is dead-lettered
  before it is handled again;
- while a batch is being handled its claim is extended and its jobs are touched, so slow is
  never mistaken for dead, nor a task in hand for a lost one (ragline.jobs.repair);
- tasks of cancelled jobs are dropped without work.

Each task gets a span in its own job's trace for as long as it is handled (ragline.tracing says
why per task, not per batch); a retry or a dead letter is an event on it. Lines logged about a
task carry its job, document and trace ids (ragline.telemetry.log_context).

The runner needs little of the job store and the crash-loop counter (`StageJobs`,
`SoloRunCounter`): the real ones are Redis (ragline.jobs.store, stage/solo_runs.py); its unit
tests give it ones in memory, beside ragline.broker.memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ragline import metrics
from ragline.broker.base import Broker, DeadLetter, Delivery
from ragline.errors import (
    BrokerUnavailable,
    NotFound,
    PermanentTaskError,
    RaglineError,
    StoreUnavailable,
)
from ragline.jobs.model import JobState, Stage
from ragline.retry import RetryPolicy
from ragline.stage import envelope
from ragline.telemetry import bind, log_context
from ragline.tracing import OFF, TraceSpan, start_span
from ragline.tracing import enabled as tracing_enabled
from ragline.v1 import queue_pb2

log = logging.getLogger(__name__)

Outcome = BaseException | None


@dataclass(frozen=True)
class Task:
    """A decoded message and the delivery it came in."""

    delivery: Delivery
    envelope: queue_pb2.TaskEnvelope
    # The task's span at this stage, a child of the span that published it; OFF when tracing
    # is off. Handlers add their steps' spans under it and pass its context to the next task.
    trace: TraceSpan = field(default=OFF, compare=False)

    @property
    def job_id(self) -> str:
        return self.envelope.job_id

    @property
    def attempt(self) -> int:
        return max(1, self.envelope.attempt)


class StageHandler(Protocol):
    """One stage's work on a batch of tasks."""

    stage: Stage

    async def handle(self, tasks: Sequence[Task]) -> Sequence[Outcome]:
        """Does the work for each task; returns, per task, None when done or the error it met.

        Raising fails the whole batch; the runner then bisects it to find the culprit.
        """
        ...


class StageJobs(Protocol):
    """What the runner reads and writes of the job store (ragline.jobs.store.JobStore). Each
    method raises StoreUnavailable when the store does not answer."""

    async def states(self, job_ids: Iterable[str]) -> Sequence[JobState | None]:
        """The jobs' states, in order; None for a job that does not exist."""
        ...

    async def note_error(self, job_id: str, stage: Stage, error: str, attempts: int) -> None:
        """Records a retryable error on a job that goes on."""
        ...

    async def fail(self, job_id: str, stage: Stage, error: str, attempts: int) -> bool:
        """Moves a job to FAILED with the error that ended it (NotFound for an unknown job);
        returns whether it moved."""
        ...

    async def touch(self, job_ids: Iterable[str]) -> None:
        """Marks unfinished jobs as changed now, so that a job whose task a worker holds is
        not taken for stuck."""
        ...


class SoloRunCounter(Protocol):
    """How often each redelivered message has run on its own without an answer
    (ragline.stage.solo_runs.SoloRuns). Kept outside the worker, since the worker that ran it
    may be the one that died."""

    async def start(self, message_id: str) -> int:
        """Counts one more run of the message on its own; returns how many there were."""
        ...

    async def end(self, message_id: str) -> None:
        """Forgets the message's runs: it finished."""
        ...


# Below this, a gathering read is not worth its round trip (and Redis would round it up).
_MIN_GATHER_READ_S = 0.002


class StageRunner:
    """Runs one stage's consumer loop until stopped."""

    def __init__(
        self,
        handler: StageHandler,
        broker: Broker,
        jobs: StageJobs,
        *,
        solo_runs: SoloRunCounter,
        policy: RetryPolicy | None = None,
        batch_size: int = 64,
        read_timeout_s: float = 1.0,
        extend_every_s: float = 10.0,
        stuck_after_s: float = 600.0,
        consumers: int = 1,
        gather_s: float = 0.0,
    ) -> None:
        # More than one consumer loop overlaps one batch's I/O (read, publish, progress) with
        # another's compute: the embedder keeps its model busy this way.
        self._handler = handler
        self._broker = broker
        self._jobs = jobs
        self._solo_runs = solo_runs
        self._policy = policy or RetryPolicy()
        self._batch_size = batch_size
        self._read_timeout_s = read_timeout_s
        # The claim keeper wakes often enough for both jobs: claims before they lapse, and the
        # jobs' last change well within RAGLINE_STUCK_AFTER_S.
        self._keep_every_s = min(extend_every_s, max(0.1, stuck_after_s / 3))
        self._consumers = max(1, consumers)
        # A read that returns less than a full batch keeps reading for up to this long before the
        # batch is handled: the embedder's first reads after a quiet spell would otherwise carry
        # a document or two while the rest arrive milliseconds later.
        self._gather_s = gather_s
        self._stopping = asyncio.Event()
        self.queue = envelope.queue_name(handler.stage)
        self._name = handler.stage.value
        # Label children looked up once: recording is then a lock and an add per batch.
        self._outcomes = {
            o: metrics.TASKS.labels(self._name, o)
            for o in ("ok", "retried", "dead_lettered", "dropped")
        }
        self._handle_seconds = metrics.HANDLE_SECONDS.labels(self._name)
        self._batch_tasks = metrics.BATCH_TASKS.labels(self._name)

    def stop(self) -> None:
        """Asks the loop to finish the batch in hand and return."""
        self._stopping.set()

    async def run(self) -> None:
        bind(stage=self._name)  # every line of these loops names the stage
        log.info(
            "%s stage consuming queue %r with %d consumer(s)",
            self._name,
            self.queue,
            self._consumers,
        )
        await asyncio.gather(*(self._consume() for _ in range(self._consumers)))
        log.info("%s stage stopped consuming", self._name)

    async def _consume(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                deliveries = await self._broker.read(
                    self.queue, self._batch_size, self._read_timeout_s
                )
                if deliveries:
                    deliveries += await self._gather_rest(len(deliveries))
                    await self.process(deliveries)
                backoff = 0.5
            except (BrokerUnavailable, StoreUnavailable) as exc:
                # The broker or the job store is away: what was read stays unacked and comes
                # back. Wait (with jitter, so replicas do not reconnect in lockstep) and go on.
                delay = backoff * random.uniform(0.5, 1.5)
                log.warning("%s stage: %s; trying again in %.1fs", self._name, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                backoff = min(backoff * 2, 15.0)

    async def _gather_rest(self, have: int) -> list[Delivery]:
        """More deliveries for a batch holding `have`, read until it is full or `gather_s` has
        passed since the first read returned."""
        more: list[Delivery] = []
        if self._gather_s <= 0:
            return more
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._gather_s
        while have + len(more) < self._batch_size and not self._stopping.is_set():
            left = deadline - loop.time()
            if left < _MIN_GATHER_READ_S:
                break
            try:
                more += await self._broker.read(
                    self.queue, self._batch_size - have - len(more), left
                )
            except (BrokerUnavailable, StoreUnavailable):
                # What is in hand was read; it is handled now, and the outage met on the
                # next read.
                break
        return more

    async def process(self, deliveries: Sequence[Delivery]) -> None:
        """Handles and settles one batch. On an outage of the broker or the job store, gives
        what is unsettled back to the broker and raises."""
        try:
            await self._process(deliveries)
        except (BrokerUnavailable, StoreUnavailable):
            await self._broker.release(deliveries)
            raise

    async def _process(self, deliveries: Sequence[Delivery]) -> None:
        traced: list[Task] = []
        try:
            await self._process_traced(deliveries, traced)
        finally:
            for task in traced:
                task.trace.end()

    def _traced(self, delivery: Delivery, env: queue_pb2.TaskEnvelope) -> Task:
        """The task, with its span at this stage started (nothing is started when tracing is
        off, nor anything read from the envelope)."""
        span = OFF
        if tracing_enabled():
            span = start_span(
                f"ragline.{self._name}",
                env.trace_context,
                {
                    "ragline.job_id": env.job_id,
                    "ragline.document_id": envelope.document_of(env).document_id,
                    "ragline.attempt": max(1, env.attempt),
                    "messaging.message.id": env.message_id,
                    "messaging.destination.name": self.queue,
                },
            )
        return Task(delivery, env, span)

    async def _process_traced(self, deliveries: Sequence[Delivery], traced: list[Task]) -> None:
        tasks: list[Task] = []
        for d in deliveries:
            try:
                env = envelope.decode(d.body)
            except PermanentTaskError as exc:
                await self._dead_letter(d, None, exc)
                continue
            task = self._traced(d, env)
            traced.append(task)
            if d.delivery_count > self._policy.raw_delivery_limit:
                # The backstop: handed out far more often than any crash loop should allow.
                await self._give_up(
                    task,
                    PermanentTaskError(
                        f"delivered {d.delivery_count} times without finishing: it likely "
                        "crashes its worker"
                    ),
                )
                continue
            tasks.append(task)
        tasks = await self._drop_cancelled(tasks)
        if not tasks:
            return
        # A message delivered before without being settled may have crashed its worker: run
        # each such one alone, so a crash takes down nothing beside it and innocent neighbours
        # never climb towards the delivery limit with it.
        fresh = [t for t in tasks if t.delivery.delivery_count <= 1]
        suspects = [t for t in tasks if t.delivery.delivery_count > 1]
        if fresh:
            await self._run_group(fresh)
        for task in suspects:
            await self._run_suspect(task)

    async def _run_suspect(self, task: Task) -> None:
        """Runs a redelivered message alone, counting such runs: one that crashed its worker
        every time it ran alone `maximum_deliveries` times is dead-lettered instead."""
        runs = await self._solo_runs.start(task.envelope.message_id)
        if runs > self._policy.maximum_deliveries:
            await self._give_up(
                task,
                PermanentTaskError(
                    f"it crashes its worker: {runs - 1} runs on its own ended without an "
                    f"answer (delivered {task.delivery.delivery_count} times)"
                ),
            )
        else:
            await self._run_group([task])
        await self._solo_runs.end(task.envelope.message_id)

    async def _run_group(self, tasks: list[Task]) -> None:
        keeper = asyncio.create_task(
            self._keep_claimed([t.delivery for t in tasks], {t.job_id for t in tasks})
        )
        start = time.perf_counter()
        try:
            outcomes = await self._handle_isolating(tasks)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        self._handle_seconds.observe(time.perf_counter() - start)
        self._batch_tasks.observe(len(tasks))
        done = [t.delivery for t, o in zip(tasks, outcomes, strict=True) if o is None]
        await self._broker.ack(done)
        self._outcomes["ok"].inc(len(done))
        for task, outcome in zip(tasks, outcomes, strict=True):
            if outcome is not None:
                await self._settle_failure(task, outcome)

    async def _handle_isolating(self, tasks: Sequence[Task]) -> list[Outcome]:
        """The handler's outcomes; a batch that fails whole is split in two and each half tried
        again, down to single tasks, so only the culprits fail."""
        try:
            return list(await self._handler.handle(tasks))
        except (BrokerUnavailable, StoreUnavailable):
            # An outage, not a bad task: leave the batch unacked so it is delivered again,
            # rather than spend the tasks' attempts on it.
            raise
        except Exception as exc:
            if len(tasks) == 1:
                if not isinstance(exc, RaglineError):
                    with _about(tasks[0]):
                        log.exception("%s stage: job %s failed", self._name, tasks[0].job_id)
                return [exc]
            log.warning(
                "%s stage: a batch of %d failed (%s); bisecting to find the culprit",
                self._name,
                len(tasks),
                _describe(exc),
            )
            middle = len(tasks) // 2
            return [
                *await self._handle_isolating(tasks[:middle]),
                *await self._handle_isolating(tasks[middle:]),
            ]

    async def _keep_claimed(self, deliveries: list[Delivery], job_ids: set[str]) -> None:
        """While a batch is in hand: extends its claims, and touches its jobs, whose last change
        would otherwise age while a long task runs (a fast batch is done before the first
        wake, and costs nothing here)."""
        while True:
            await asyncio.sleep(self._keep_every_s)
            try:
                await self._broker.extend(deliveries)
            except BrokerUnavailable as exc:
                log.warning("%s stage: could not extend claims: %s", self._name, exc)
            try:
                await self._jobs.touch(job_ids)
            except StoreUnavailable as exc:
                log.warning("%s stage: could not mark its jobs as in hand: %s", self._name, exc)

    async def _drop_cancelled(self, tasks: list[Task]) -> list[Task]:
        """Acks, without work, tasks whose job was cancelled or no longer exists.

        Tasks of FAILED jobs still run: the job's other chunks land, so requeueing its dead
        letter after a fix completes the job.
        """
        if not tasks:
            return tasks
        ids = list({t.job_id for t in tasks})
        states = dict(zip(ids, await self._jobs.states(ids), strict=True))
        keep = [t for t in tasks if states[t.job_id] not in (None, JobState.CANCELLED)]
        drop = [t for t in tasks if t not in keep]
        for t in drop:
            t.trace.event("ragline.dropped", {"ragline.reason": "the job was cancelled or is gone"})
        if drop:
            await self._broker.ack([t.delivery for t in drop])
            self._outcomes["dropped"].inc(len(drop))
        return keep

    async def _settle_failure(self, task: Task, exc: BaseException) -> None:
        with _about(task):
            await self._settle_failure_of(task, exc)

    async def _settle_failure_of(self, task: Task, exc: BaseException) -> None:
        task.trace.fail(exc)
        if self._policy.should_retry(exc, task.attempt):
            delay = self._policy.delay_s(task.attempt)
            task.trace.event(
                "ragline.retry",
                {
                    "ragline.attempt": task.attempt,
                    "ragline.retry_delay_s": delay,
                    "exception.type": type(exc).__name__,
                    "exception.message": _describe(exc),
                },
            )
            log.warning(
                "%s stage: job %s attempt %d failed (%s); retrying in %.1fs",
                self._name,
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
            self._outcomes["retried"].inc()
            return
        await self._give_up(task, exc)

    async def _give_up(self, task: Task, exc: BaseException) -> None:
        with _about(task):
            await self._give_up_on(task, exc)

    async def _give_up_on(self, task: Task, exc: BaseException) -> None:
        task.trace.fail(exc)
        task.trace.event(
            "ragline.dead_letter",
            {
                "ragline.attempt": task.attempt,
                "ragline.dead_letter_queue": self.queue,
                "exception.type": type(exc).__name__,
                "exception.message": _describe(exc),
            },
        )
        log.error(
            "%s stage: job %s failed after %d attempt(s): %s; moved to the %s dead-letter queue",
            self._name,
            task.job_id,
            task.attempt,
            _describe(exc),
            self.queue,
        )
        await self._dead_letter(task.delivery, task, exc)
        # A job record that expired or was never made: the dead letter still tells the story.
        with contextlib.suppress(NotFound):
            await self._jobs.fail(task.job_id, self._handler.stage, _describe(exc), task.attempt)

    async def _dead_letter(self, delivery: Delivery, task: Task | None, exc: BaseException) -> None:
        now = time.time()
        first = now
        if task is not None and task.envelope.HasField("first_failure_time"):
            first = task.envelope.first_failure_time.ToNanoseconds() / 1e9
        record = DeadLetter(
            queue=delivery.queue,
            body=delivery.body,
            job_id=task.job_id if task else "",
            error_type=type(exc).__name__,
            error_message=_describe(exc),
            attempts=task.attempt if task else 1,
            first_failure_time=first,
            last_failure_time=now,
        )
        await self._broker.dead_letter(delivery, record)
        self._outcomes["dead_lettered"].inc()


def _about(task: Task) -> contextlib.AbstractContextManager[None]:
    """Lines logged inside name the task's job, document and trace."""
    return log_context(
        job_id=task.job_id,
        document_id=envelope.document_of(task.envelope).document_id,
        trace_id=task.trace.trace_id,
    )


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
