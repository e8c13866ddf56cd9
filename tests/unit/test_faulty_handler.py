"""Fault rules wrapped around a stage handler: each rule's effect on its task, and only there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from ragline.broker.base import Delivery
from ragline.errors import PermanentTaskError, TransientError
from ragline.faults import Faults, InjectedFault
from ragline.jobs.model import Stage
from ragline.stage.envelope import new_envelope
from ragline.stage.faulty import FaultyHandler, task_texts
from ragline.stage.runner import Outcome, Task
from ragline.v1 import queue_pb2

pytestmark = pytest.mark.unit


def embed_task(job_id: str, text: str, attempt: int = 1) -> Task:
    env = new_envelope(job_id, attempt=attempt)
    env.embed.chunks.append(queue_pb2.TextChunk(chunk_index=0, text=text))
    return Task(Delivery("embed", env.SerializeToString(), job_id), env)


class Inner:
    stage = Stage.EMBED

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    async def handle(self, tasks: Sequence[Task]) -> Sequence[Outcome]:
        self.seen.append([t.job_id for t in tasks])
        return [None] * len(tasks)


async def test_a_task_with_a_marker_gets_its_fault_and_the_rest_the_real_work() -> None:
    inner = Inner()
    handler = FaultyHandler(inner, Faults("embed:transient:FLAKY:1,embed:permanent:BAD", "embed"))
    tasks = [embed_task("a", "fine"), embed_task("b", "FLAKY"), embed_task("c", "BAD")]
    outcomes = await handler.handle(tasks)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], TransientError)
    assert isinstance(outcomes[2], PermanentTaskError)
    assert inner.seen == [["a"]]
    assert handler.stage is Stage.EMBED
    # Past its attempts, the transient rule lets the task through to the real work.
    assert await handler.handle([embed_task("b", "FLAKY", attempt=2)]) == [None]


async def test_poison_fails_the_whole_batch_before_any_real_work() -> None:
    inner = Inner()
    handler = FaultyHandler(inner, Faults("embed:poison:TOXIC", "embed"))
    with pytest.raises(InjectedFault):
        await handler.handle([embed_task("a", "fine"), embed_task("b", "TOXIC")])
    assert inner.seen == []


async def test_a_stall_holds_the_task_and_leaves_the_event_loop_serving() -> None:
    handler = FaultyHandler(Inner(), Faults("embed:stall:SLOW:1", "embed"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    clock = asyncio.create_task(ticker())
    started = time.monotonic()
    assert await handler.handle([embed_task("a", "SLOW")]) == [None]
    clock.cancel()
    assert time.monotonic() - started >= 0.95
    assert ticks >= 5  # time.sleep on the loop would have allowed none


def test_markers_are_looked_for_in_the_text_each_stage_works_on() -> None:
    chunk = new_envelope("j")
    chunk.chunk.content = b"the document"
    index = new_envelope("j")
    index.index.chunks.append(queue_pb2.EmbeddedChunk(chunk_index=0, text="a chunk"))
    tasks = [Task(Delivery("q", b"", "1"), env) for env in (chunk, index)]
    assert [task_texts(t) for t in tasks] == [["the document"], ["a chunk"]]
    assert task_texts(embed_task("j", "embedded")) == ["embedded"]
