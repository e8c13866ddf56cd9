"""Fault rules wrapped around a stage handler: each rule's effect on its task, and only there."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ragline.broker.base import Delivery
from ragline.errors import PermanentTaskError, TransientError
from ragline.faults import Faults, InjectedFault
from ragline.gateway.outbox import FaultyOutbox, Outbox
from ragline.jobs.model import Job, JobProgress, JobState, Stage
from ragline.jobs.store import TaskTarget
from ragline.stage.envelope import chunk_task, new_envelope
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


class RecordingOutbox(Outbox):
    def __init__(self) -> None:
        self.sent: list[str] = []

    @property
    def target(self) -> TaskTarget:
        return TaskTarget(stream="s")

    async def send(self, new: Sequence[tuple[Job, bytes]]) -> None:
        self.sent += [job.job_id for job, _ in new]


def chunk_job(job_id: str, content: str) -> tuple[Job, bytes]:
    body = chunk_task(
        job_id,
        queue_pb2.DocumentRef(document_id="d"),
        content=content.encode(),
        content_type="text/plain",
        chunk_size=64,
        chunk_overlap=0,
        embedding_model="m",
    )
    return Job(job_id, "d", 1, JobState.ACCEPTED, JobProgress()), body


async def test_the_gateways_outbox_fault_lets_documents_without_the_marker_through() -> None:
    inner = RecordingOutbox()
    outbox = FaultyOutbox(inner, Faults("gateway:crash_after_commit:GONE", "gateway"))
    assert outbox.target == inner.target
    await outbox.send([chunk_job("j1", "harmless"), chunk_job("j2", "also fine")])
    assert inner.sent == ["j1", "j2"]


def test_the_gateways_outbox_fault_ends_the_process_before_the_send() -> None:
    # os._exit, as a crash would: only a separate process can show it.
    program = (
        "import asyncio\n"
        "from tests.unit.test_faulty_handler import FaultyOutbox, Faults, RecordingOutbox, chunk_job\n"
        "inner = RecordingOutbox()\n"
        "outbox = FaultyOutbox(inner, Faults('gateway:crash_after_commit:GONE', 'gateway'))\n"
        "asyncio.run(outbox.send([chunk_job('j1', 'a GONE document')]))\n"
        "print('sent', inner.sent)\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert run.returncode == 70, run.stderr
    assert "sent" not in run.stdout
