"""A stage handler wrapped in deliberate faults (RAGLINE_FAULTS, see ragline.faults), so that no
production handler carries fault-injection code. `serve_stage` applies it only when the setting
is on.

Per task, the first matching rule decides: a transient or permanent fault is that task's
outcome (its neighbours go on to the real handler), poison fails the whole batch (the runner
bisects it, as it does any batch that raises), a crash ends the process, and a stall holds the
task in a worker thread before the real work, leaving the event loop free.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ragline.errors import PermanentTaskError, TransientError
from ragline.faults import Faults
from ragline.jobs.store import JobStore
from ragline.stage.runner import Outcome, StageHandler, Task


def task_texts(task: Task, document: bytes | None = None) -> list[str]:
    """The text a fault rule's marker is looked for in: the document for a chunk task (its
    bytes from the job store, `document`, when the task refers to them), the chunks' texts for
    an embed or index task."""
    env = task.envelope
    kind = env.WhichOneof("task")
    if kind == "chunk":
        body = document if env.chunk.content_in_store and document else env.chunk.content
        return [body.decode("utf-8", "replace")]
    if kind == "embed":
        return [c.text for c in env.embed.chunks]
    if kind == "index":
        return [c.text for c in env.index.chunks]
    return []


class FaultyHandler:
    """`inner`, with the stage's fault rules applied to each task first."""

    def __init__(self, inner: StageHandler, faults: Faults, jobs: JobStore | None = None) -> None:
        """`jobs` reads the documents that chunk tasks refer to."""
        self.stage = inner.stage
        self._inner = inner
        self._faults = faults
        self._jobs = jobs

    async def _document(self, task: Task) -> bytes | None:
        if self._jobs is None or not task.envelope.chunk.content_in_store:
            return None
        return await self._jobs.document_body(task.job_id)

    async def handle(self, tasks: Sequence[Task]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = [None] * len(tasks)
        clean: list[int] = []
        for i, task in enumerate(tasks):
            texts = task_texts(task, await self._document(task))
            try:
                stall_s = self._faults.check(texts, task.attempt)  # poison raises
            except (TransientError, PermanentTaskError) as exc:
                outcomes[i] = exc
                continue
            if stall_s:
                await asyncio.to_thread(time.sleep, stall_s)
            clean.append(i)
        if clean:
            done = await self._inner.handle([tasks[i] for i in clean])
            for i, outcome in zip(clean, done, strict=True):
                outcomes[i] = outcome
        return outcomes
