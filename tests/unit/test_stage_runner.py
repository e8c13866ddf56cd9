"""The stage runner's settling, on the in-memory broker and job store: retries and their backoff,
dead letters when attempts are spent or the error is permanent, bisecting a failing batch,
crash counting, cancelled jobs, claims kept through a slow batch, outages and draining.

tests/integration/test_stage_runner_on_brokers.py takes the main ones again, end to end on Redis
and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from ragline.broker.base import Broker, Delivery
from ragline.broker.memory import MemoryBroker, MemoryServer
from ragline.errors import (
    BrokerUnavailable,
    PermanentTaskError,
    StoreUnavailable,
    TransientError,
)
from ragline.jobs.model import JobState, Stage
from ragline.retry import RAW_DELIVERY_FACTOR, RetryPolicy
from ragline.stage.envelope import decode
from ragline.stage.runner import StageRunner, Task
from tests.runner_tasks import FAST, FakeHandler, crash_until_given_up, embed_task
from tests.unit.memory_jobs import MemoryJobs, MemorySoloRuns

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


@pytest.fixture
def server() -> MemoryServer:
    return MemoryServer()


@pytest.fixture
async def broker(server: MemoryServer) -> AsyncIterator[MemoryBroker]:
    b = MemoryBroker(server, consumer_name="runner-test")
    await b.connect()
    yield b
    await b.close()


@pytest.fixture
def jobs() -> MemoryJobs:
    return MemoryJobs()


@pytest.fixture
def solo_runs() -> MemorySoloRuns:
    return MemorySoloRuns()


MakeRunner = Callable[..., StageRunner]
Connect = Callable[[str], Awaitable[Broker]]


@pytest.fixture
def make_runner(broker: MemoryBroker, jobs: MemoryJobs, solo_runs: MemorySoloRuns) -> MakeRunner:
    """A runner of `handler` on the test's broker, job store and crash-loop counter."""

    def make(handler: FakeHandler, on: Broker | None = None, **options: object) -> StageRunner:
        return StageRunner(handler, on or broker, jobs, solo_runs=solo_runs, **options)

    return make


@pytest.fixture
def connect(server: MemoryServer) -> Connect:
    """Opens another connection to the test's server: another worker process."""

    async def open_connection(name: str) -> Broker:
        worker = MemoryBroker(server, consumer_name=name)
        await worker.connect()
        return worker

    return open_connection


async def read_all(broker: Broker, want: int, within_s: float = 5.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within_s
    while len(got) < want and time.monotonic() < deadline:
        got += await broker.read("embed", 64, 0.1)
    return got


async def run_until(runner: StageRunner, done: Callable[[], bool], within_s: float = 10) -> None:
    """Runs the runner's loop until `done()` holds, then stops it and waits for it to return."""
    loop = asyncio.create_task(runner.run())
    deadline = time.monotonic() + within_s
    try:
        while not done():
            assert time.monotonic() < deadline, "the runner never got there"
            assert not loop.done(), "the run loop ended on its own"
            await asyncio.sleep(0.01)
    finally:
        runner.stop()
        await asyncio.wait_for(loop, timeout=5)


# -- retries -----------------------------------------------------------------------------------


async def test_a_failed_task_is_retried_later_as_its_next_attempt_while_others_are_acked(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    a, b, c = (jobs.create() for _ in range(3))
    handler = FakeHandler()
    handler.failures[b] = RuntimeError("the GPU hiccuped")
    runner = make_runner(handler, policy=FAST)
    await broker.publish("embed", [embed_task(a), embed_task(b), embed_task(c)])
    first = await read_all(broker, 3)
    started = time.monotonic()
    await runner.process(first)

    assert handler.calls == [[(a, 1), (b, 1), (c, 1)]]
    assert await broker.depth("embed") == 1  # a and c are settled; b waits for its retry
    assert await broker.list_dead_letters("embed") == []
    noted = jobs.get(b)
    assert noted.state is JobState.ACCEPTED
    assert (noted.last_error, noted.last_error_stage, noted.attempts) == (
        "the GPU hiccuped",
        Stage.EMBED,
        1,
    )
    assert jobs.get(a).last_error == jobs.get(c).last_error == ""

    again = await read_all(broker, 1)
    assert time.monotonic() - started >= FAST.initial_interval_s * 0.95  # not before the delay
    env = decode(again[0].body)
    assert (env.job_id, env.attempt) == (b, 2)
    assert env.message_id != decode(first[1].body).message_id
    assert env.embed == decode(first[1].body).embed
    assert again[0].delivery_count == 1  # a new message, not a redelivery

    handler.failures.clear()
    await runner.process(again)
    assert handler.calls[-1] == [(b, 2)]
    assert await broker.depth("embed") == 0


async def test_the_run_loop_retries_until_the_task_succeeds(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    job = jobs.create()

    class FlakyOnce(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            await super().handle(tasks)
            return [TransientError("busy") if t.attempt == 1 else None for t in tasks]

    handler = FlakyOnce()
    runner = make_runner(
        handler, policy=RetryPolicy(initial_interval_s=0.1, jitter=0.0), read_timeout_s=0.05
    )
    await broker.publish("embed", [embed_task(job)])
    await run_until(runner, lambda: len(handler.calls) == 2)
    assert handler.calls == [[(job, 1)], [(job, 2)]]
    assert await broker.depth("embed") == 0
    assert await broker.list_dead_letters("embed") == []
    assert jobs.get(job).state is JobState.ACCEPTED


async def test_retries_back_off_exponentially_then_dead_letter_when_attempts_are_spent(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    job = jobs.create()
    handled_at: list[float] = []

    class AlwaysBusy(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            handled_at.append(time.monotonic())
            await super().handle(tasks)
            return [TransientError("still busy")] * len(tasks)

    handler = AlwaysBusy()
    policy = RetryPolicy(
        initial_interval_s=0.1, backoff_coefficient=3.0, jitter=0.0, maximum_attempts=3
    )
    runner = make_runner(handler, policy=policy, read_timeout_s=0.05)
    await broker.publish("embed", [embed_task(job)])
    await run_until(runner, lambda: jobs.get(job).state is JobState.FAILED)

    assert handler.calls == [[(job, 1)], [(job, 2)], [(job, 3)]]
    first_wait, second_wait = handled_at[1] - handled_at[0], handled_at[2] - handled_at[1]
    assert first_wait >= 0.1 * 0.95
    assert second_wait >= 0.3 * 0.95  # three times the first delay: it backs off
    (letter,) = await broker.list_dead_letters("embed")
    assert (letter.job_id, letter.attempts, letter.error_type, letter.error_message) == (
        job,
        3,
        "TransientError",
        "still busy",
    )
    assert decode(letter.body).attempt == 3
    assert letter.first_failure_time <= letter.last_failure_time
    failed = jobs.get(job)
    assert (failed.attempts, failed.last_error, failed.last_error_stage) == (
        3,
        "still busy",
        Stage.EMBED,
    )
    assert await broker.depth("embed") == 0


async def test_attempts_spent_dead_letter_and_fail_the_job(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    job = jobs.create()
    handler = FakeHandler()
    handler.failures[job] = TransientError("still busy")
    runner = make_runner(handler, policy=FAST)
    await broker.publish("embed", [embed_task(job, attempt=FAST.maximum_attempts)])
    await runner.process(await read_all(broker, 1))
    (letter,) = await broker.list_dead_letters("embed")
    assert (letter.attempts, letter.error_type) == (FAST.maximum_attempts, "TransientError")
    got = jobs.get(job)
    assert (got.state, got.attempts, got.last_error) == (
        JobState.FAILED,
        FAST.maximum_attempts,
        "still busy",
    )
    assert await broker.depth("embed") == 0


async def test_a_permanent_error_dead_letters_at_once_and_fails_the_job(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    bad, good = jobs.create("bad"), jobs.create("good")
    handler = FakeHandler()
    handler.failures[bad] = PermanentTaskError("chunk 0 is not text")
    runner = make_runner(handler, policy=FAST)
    body = embed_task(bad)
    await broker.publish("embed", [body, embed_task(good)])
    await runner.process(await read_all(broker, 2))

    assert await broker.depth("embed") == 0  # nothing waits for a retry
    (letter,) = await broker.list_dead_letters("embed")
    assert (letter.job_id, letter.body, letter.attempts) == (bad, body, 1)
    assert (letter.error_type, letter.error_message) == (
        "PermanentTaskError",
        "chunk 0 is not text",
    )
    failed = jobs.get(bad)
    assert (failed.state, failed.last_error, failed.last_error_stage) == (
        JobState.FAILED,
        "chunk 0 is not text",
        Stage.EMBED,
    )
    assert jobs.get(good).state is JobState.ACCEPTED


async def test_garbage_on_the_queue_is_dead_lettered(
    broker: MemoryBroker, make_runner: MakeRunner
) -> None:
    handler = FakeHandler()
    await broker.publish("embed", [b"\xff\xfe not an envelope"])
    await make_runner(handler, policy=FAST).process(await read_all(broker, 1))
    assert handler.calls == []
    (letter,) = await broker.list_dead_letters("embed")
    assert (letter.error_type, letter.body, letter.job_id) == (
        "PermanentTaskError",
        b"\xff\xfe not an envelope",
        "",
    )
    assert await broker.depth("embed") == 0


# -- bisecting ---------------------------------------------------------------------------------


async def test_one_poisoned_task_is_bisected_out_of_its_batch(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    ids = [jobs.create() for _ in range(5)]
    poisoned = ids[3]

    class Poisoned(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            await super().handle(tasks)
            if any(t.job_id == poisoned for t in tasks):
                raise PermanentTaskError("a chunk the tokenizer chokes on")
            return [None] * len(tasks)

    handler = Poisoned()
    await broker.publish("embed", [embed_task(i) for i in ids])
    await make_runner(handler, policy=FAST).process(await read_all(broker, 5))

    # Halves until the culprit stands alone: [0-4] -> [0,1] ok, [2-4] -> [2] ok, [3,4] -> [3], [4].
    assert [[ids.index(j) for j, _ in call] for call in handler.calls] == [
        [0, 1, 2, 3, 4],
        [0, 1],
        [2, 3, 4],
        [2],
        [3, 4],
        [3],
        [4],
    ]
    assert await broker.depth("embed") == 0
    (letter,) = await broker.list_dead_letters("embed")
    assert (letter.job_id, letter.error_message) == (poisoned, "a chunk the tokenizer chokes on")
    for job_id in ids:
        state = jobs.get(job_id).state
        assert state is (JobState.FAILED if job_id == poisoned else JobState.ACCEPTED)


async def test_a_batch_that_raises_on_every_task_retries_every_task(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    a, b = jobs.create(), jobs.create()
    handler = FakeHandler()
    handler.raise_for_batch = ValueError("bug in the batcher")
    await broker.publish("embed", [embed_task(a), embed_task(b)])
    await make_runner(handler, policy=FAST).process(await read_all(broker, 2))
    assert handler.calls == [[(a, 1), (b, 1)], [(a, 1)], [(b, 1)]]
    # Both wait for their retry: counted in the depth, not readable yet, not dead-lettered.
    assert await broker.depth("embed") == 2
    assert await broker.read("embed", 10, 0.0) == []
    assert await broker.list_dead_letters("embed") == []
    assert jobs.get(a).last_error == jobs.get(b).last_error == "bug in the batcher"
    again = await read_all(broker, 2)
    assert sorted((decode(d.body).job_id, decode(d.body).attempt) for d in again) == sorted(
        [(a, 2), (b, 2)]
    )


# -- crashes -----------------------------------------------------------------------------------


async def test_a_task_that_crashes_its_worker_every_time_is_dead_lettered_by_its_runs_alone(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner, connect: Connect
) -> None:
    """Each crash kills the worker with the message unsettled and the next worker is handed
    it again; once it has crashed maximum_deliveries runs on its own, it is given up."""
    job = jobs.create()
    handler = FakeHandler()
    handler.crashes.add(job)
    policy = RetryPolicy(maximum_deliveries=5)
    await broker.publish("embed", [embed_task(job)])

    counts = await crash_until_given_up(connect, lambda b: make_runner(handler, b, policy=policy))
    # Once in its first batch, then five runs on its own; the seventh delivery is not run.
    assert counts == [1, 2, 3, 4, 5, 6, 7]
    assert len(handler.calls) == 6
    assert await broker.depth("embed") == 0
    (letter,) = await broker.list_dead_letters("embed")
    assert "crashes its worker: 5 runs on its own ended without an answer" in letter.error_message
    assert "delivered 7 times" in letter.error_message
    assert letter.job_id == job
    failed = jobs.get(job)
    assert failed.state is JobState.FAILED
    assert "crashes its worker" in failed.last_error


async def test_the_batch_mates_of_a_crashing_task_complete_and_only_it_is_dead_lettered(
    broker: MemoryBroker,
    jobs: MemoryJobs,
    solo_runs: MemorySoloRuns,
    make_runner: MakeRunner,
    connect: Connect,
) -> None:
    before, crasher, after = jobs.create(), jobs.create(), jobs.create()
    handler = FakeHandler()
    handler.crashes.add(crasher)
    policy = RetryPolicy(maximum_deliveries=3)
    await broker.publish("embed", [embed_task(j) for j in (before, crasher, after)])

    await crash_until_given_up(connect, lambda b: make_runner(handler, b, policy=policy))
    # The batch crashed once whole; from then on each redelivered task ran alone.
    assert handler.calls[0] == [(before, 1), (crasher, 1), (after, 1)]
    assert all(len(call) == 1 for call in handler.calls[1:])
    assert [call for call in handler.calls[1:] if call != [(crasher, 1)]] == [
        [(before, 1)],
        [(after, 1)],
    ]
    assert handler.calls[1:].count([(crasher, 1)]) == policy.maximum_deliveries
    assert await broker.depth("embed") == 0
    (letter,) = await broker.list_dead_letters("embed")
    assert letter.job_id == crasher
    assert [jobs.get(j).state for j in (before, crasher, after)] == [
        JobState.ACCEPTED,
        JobState.FAILED,
        JobState.ACCEPTED,
    ]
    assert solo_runs.runs == {}  # every counter ended: the innocent ones ran, the culprit left


async def test_a_message_past_the_raw_delivery_limit_is_dead_lettered_without_a_run(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    known = jobs.create()
    handler = FakeHandler()
    runner = make_runner(handler, policy=RetryPolicy(maximum_deliveries=3))
    # The second is a job whose record expired or was removed: settled all the same, and the
    # runner does not raise (an error out of process() would end the run loop).
    await broker.publish("embed", [embed_task(known), embed_task("job-that-is-gone")])
    delivered = await read_all(broker, 2)
    # Past the backstop (a multiple of maximum_deliveries), whatever the runs alone counted.
    over = [dataclasses.replace(d, delivery_count=3 * RAW_DELIVERY_FACTOR + 1) for d in delivered]
    await runner.process(over)
    assert handler.calls == []
    assert sorted(x.job_id for x in await broker.list_dead_letters("embed")) == sorted(
        [known, "job-that-is-gone"]
    )
    assert "delivered 13 times" in jobs.get(known).last_error
    assert jobs.get(known).state is JobState.FAILED
    assert await broker.depth("embed") == 0


# -- cancelled and failed jobs -----------------------------------------------------------------


async def test_tasks_of_cancelled_or_unknown_jobs_are_acked_without_handling(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    cancelled, live = jobs.create(), jobs.create()
    jobs.move(cancelled, JobState.CANCELLED)
    handler = FakeHandler()
    await broker.publish(
        "embed", [embed_task(cancelled), embed_task("unknown-job"), embed_task(live)]
    )
    await make_runner(handler, policy=FAST).process(await read_all(broker, 3))
    assert handler.calls == [[(live, 1)]]
    assert await broker.depth("embed") == 0
    assert await broker.list_dead_letters("embed") == []
    assert jobs.get(cancelled).state is JobState.CANCELLED


async def test_a_job_cancelled_while_its_task_waits_for_a_retry_is_not_retried(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    job = jobs.create()
    handler = FakeHandler()
    handler.failures[job] = TransientError("busy")
    runner = make_runner(handler, policy=RetryPolicy(initial_interval_s=0.05, jitter=0.0))
    await broker.publish("embed", [embed_task(job)])
    await runner.process(await read_all(broker, 1))
    jobs.move(job, JobState.CANCELLED)
    await runner.process(await read_all(broker, 1))
    assert handler.calls == [[(job, 1)]]
    assert await broker.depth("embed") == 0
    assert await broker.list_dead_letters("embed") == []


async def test_tasks_of_a_failed_job_still_run(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    """So that requeueing the job's dead letter after a fix can complete it."""
    failed = jobs.create()
    await jobs.fail(failed, Stage.CHUNK, "bad", 1)
    handler = FakeHandler()
    await broker.publish("embed", [embed_task(failed)])
    await make_runner(handler, policy=FAST).process(await read_all(broker, 1))
    assert handler.calls == [[(failed, 1)]]
    assert await broker.depth("embed") == 0
    after = jobs.get(failed)
    assert (after.state, after.last_error) == (JobState.FAILED, "bad")


# -- outages, slow batches, stopping -----------------------------------------------------------


async def test_an_outage_mid_batch_gives_the_batch_back_without_spending_an_attempt(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    job = jobs.create()
    handler = FakeHandler()
    handler.raise_for_batch = BrokerUnavailable("the broker went away")
    await broker.publish("embed", [embed_task(job)])
    with pytest.raises(BrokerUnavailable):
        await make_runner(handler, policy=FAST).process(await read_all(broker, 1))
    (again,) = await broker.read("embed", 10, 0.0)  # given back at once, not left to time out
    assert (decode(again.body).attempt, again.delivery_count) == (1, 2)
    assert jobs.get(job).last_error == ""
    assert await broker.list_dead_letters("embed") == []


async def test_the_run_loop_waits_out_a_job_store_outage_and_handles_the_batch_again(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    job = jobs.create()

    class StoreAwayOnce(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            await super().handle(tasks)
            if len(self.calls) == 1:
                raise StoreUnavailable("the job store (Redis) did not answer")
            return [None] * len(tasks)

    handler = StoreAwayOnce()
    runner = make_runner(handler, policy=FAST, read_timeout_s=0.05)
    await broker.publish("embed", [embed_task(job)])
    await run_until(runner, lambda: len(handler.calls) == 2)
    assert handler.calls == [[(job, 1)], [(job, 1)]]  # the same attempt, handled again
    assert await broker.depth("embed") == 0
    assert jobs.get(job).last_error == ""


async def test_a_slow_batch_keeps_its_claim_past_the_visibility_timeout(
    server: MemoryServer, jobs: MemoryJobs, solo_runs: MemorySoloRuns
) -> None:
    job = jobs.create()
    worker = MemoryBroker(server, consumer_name="slow", visibility_timeout_s=0.25)
    rival = MemoryBroker(server, consumer_name="rival", visibility_timeout_s=0.25)
    await worker.connect()
    await rival.connect()

    class Slow(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            await asyncio.sleep(0.6)  # over twice the visibility timeout
            return await super().handle(tasks)

    handler = Slow()
    runner = StageRunner(handler, worker, jobs, solo_runs=solo_runs, extend_every_s=0.05)
    await worker.publish("embed", [embed_task(job)])
    work = asyncio.create_task(runner.process(await read_all(worker, 1)))
    stolen: list[Delivery] = []
    while not work.done():
        stolen += await rival.read("embed", 10, 0.05)
    await work
    assert stolen == []  # slow, never mistaken for dead
    assert handler.calls == [[(job, 1)]]
    assert await worker.depth("embed") == 0


async def test_a_long_task_touches_its_job_so_it_never_looks_stuck(
    broker: MemoryBroker, jobs: MemoryJobs, solo_runs: MemorySoloRuns
) -> None:
    # With RAGLINE_STUCK_AFTER_S of 0.3 s, a task in hand for 0.5 s touches its job at least
    # once (every 0.1 s), and a fast one not at all.
    slow, fast = jobs.create(), jobs.create()

    class SlowOnOne(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            if any(t.job_id == slow for t in tasks):
                await asyncio.sleep(0.5)
            return await super().handle(tasks)

    runner = StageRunner(
        SlowOnOne(), broker, jobs, solo_runs=solo_runs, extend_every_s=10, stuck_after_s=0.3
    )
    await broker.publish("embed", [embed_task(fast)])
    await runner.process(await read_all(broker, 1))
    assert jobs.touched == []
    await broker.publish("embed", [embed_task(slow)])
    await runner.process(await read_all(broker, 1))
    assert 2 <= jobs.touched.count(slow) <= 5, jobs.touched
    assert set(jobs.touched) == {slow}


async def test_stop_finishes_the_batch_in_hand_then_returns(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    ids = [jobs.create() for _ in range(3)]
    started = asyncio.Event()

    class Slow(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            started.set()
            await asyncio.sleep(0.2)
            return await super().handle(tasks)

    handler = Slow()
    runner = make_runner(handler, policy=FAST, read_timeout_s=0.05)
    await broker.publish("embed", [embed_task(j) for j in ids])
    loop = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), 5)
    runner.stop()  # as SIGTERM does, mid-batch
    await asyncio.wait_for(loop, 5)
    assert handler.calls == [[(j, 1) for j in ids]]
    assert await broker.depth("embed") == 0  # every task of the batch settled before it returned


# -- gathering a batch -------------------------------------------------------------------------


async def test_a_short_read_gathers_what_arrives_within_the_window(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    ids = [jobs.create() for _ in range(5)]
    handler = FakeHandler()
    runner = make_runner(handler, batch_size=10, read_timeout_s=0.05, gather_s=0.5)
    await broker.publish("embed", [embed_task(ids[0])])

    async def trickle() -> None:  # the rest arrive one by one, well inside the window
        for job_id in ids[1:]:
            await asyncio.sleep(0.05)
            await broker.publish("embed", [embed_task(job_id)])

    await asyncio.gather(
        trickle(), run_until(runner, lambda: sum(map(len, handler.calls)) == len(ids))
    )
    assert handler.calls == [[(j, 1) for j in ids]]


async def test_the_window_ends_a_short_batch_and_a_full_one_does_not_wait(
    broker: MemoryBroker, jobs: MemoryJobs, make_runner: MakeRunner
) -> None:
    ids = [jobs.create() for _ in range(4)]
    handled_at: list[float] = []

    class Timed(FakeHandler):
        async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
            handled_at.append(time.monotonic())
            return await super().handle(tasks)

    handler = Timed()
    # Long beside any stall of a loaded machine (with no I/O in the way, only the CPU stalls), so
    # "without waiting it out" is told apart from "after it" by a wide margin.
    window_s = 0.5
    runner = make_runner(handler, batch_size=3, read_timeout_s=0.05, gather_s=window_s)
    # Three fill a batch: handled without waiting out the window. The fourth is alone: handled
    # once the window has passed, without the fifth that never comes.
    await broker.publish("embed", [embed_task(j) for j in ids])
    started = time.monotonic()
    await run_until(runner, lambda: sum(map(len, handler.calls)) == len(ids))
    assert handler.calls == [[(j, 1) for j in ids[:3]], [(ids[3], 1)]]
    assert handled_at[0] - started < window_s * 0.75
    assert handled_at[1] - handled_at[0] >= window_s * 0.9
