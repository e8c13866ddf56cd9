"""What the stage runner's tests share, on any broker: a handler that fails the jobs it is told
to and records what it was given, embed tasks to feed it, and a crash to stand for kill -9."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from ragline.broker.base import Broker, Delivery
from ragline.jobs.model import Stage
from ragline.retry import RetryPolicy
from ragline.stage.envelope import new_envelope
from ragline.stage.runner import StageRunner, Task
from ragline.v1 import queue_pb2

__all__ = ["FAST", "Crash", "FakeHandler", "crash_until_given_up", "embed_task"]

# Quick retries, no jitter (delays exact to the test), three attempts.
FAST = RetryPolicy(initial_interval_s=0.3, jitter=0.0, maximum_attempts=3)


class Crash(BaseException):
    """The worker process dies mid-batch: nothing the runner catches, so nothing is settled.
    A test then closes the worker's broker connection, as the process's death would."""


class FakeHandler:
    """A stage handler that fails the jobs it is told to, and records what it was given."""

    stage = Stage.EMBED

    def __init__(self) -> None:
        self.failures: dict[str, BaseException] = {}
        self.calls: list[list[tuple[str, int]]] = []
        self.raise_for_batch: BaseException | None = None
        # Jobs whose task kills the worker whenever it is in the batch.
        self.crashes: set[str] = set()

    async def handle(self, tasks: Sequence[Task]) -> Sequence[BaseException | None]:
        self.calls.append([(t.job_id, t.attempt) for t in tasks])
        if any(t.job_id in self.crashes for t in tasks):
            raise Crash
        if self.raise_for_batch is not None:
            raise self.raise_for_batch
        return [self.failures.get(t.job_id) for t in tasks]


def embed_task(job_id: str, attempt: int = 1) -> bytes:
    """A serialized embed task of one chunk for `job_id`."""
    env = new_envelope(job_id, attempt=attempt)
    env.embed.CopyFrom(
        queue_pb2.EmbedTask(
            document=queue_pb2.DocumentRef(document_id="doc", document_version=1),
            chunks=[queue_pb2.TextChunk(chunk_index=0, text="hello", token_count=1)],
        )
    )
    return env.SerializeToString()


async def crash_until_given_up(
    connect: Callable[[str], Awaitable[Broker]],
    make_runner: Callable[[Broker], StageRunner],
    queue: str = "embed",
    *,
    within_s: float = 20.0,
) -> list[int]:
    """Runs worker after worker on the queue's one message, each a new broker connection and
    runner, until a runner settles it without crashing. A worker that crashes (its handler
    raised Crash) dies: its connection closes with the message unsettled, and the broker hands
    it to the next. Returns the delivery count each worker saw."""
    counts: list[int] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        broker = await connect(f"worker-{len(counts) + 1}")
        got: list[Delivery] = []
        while not got and time.monotonic() < deadline:
            got = await broker.read(queue, 10, 0.1)
        if not got:
            break
        counts.append(got[0].delivery_count)
        try:
            await make_runner(broker).process(got)
        except Crash:
            continue
        finally:
            await broker.close()
        return counts
    raise AssertionError(f"still crashing after deliveries {counts}")
