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
from ragline.stage.runner import Outcome, StageHandler, Task


def task_texts(task: Task) -> list[str]:
    """The text a fault rule's marker is looked for in: the document for a chunk task, the
    chunks' texts for an embed or index task."""
    env = task.envelope
    kind = env.WhichOneof("task")
    if kind == "chunk":
        return [env.chunk.content.decode("utf-8", "replace")]
    if kind == "embed":
        return [c.text for c in env.embed.chunks]
    if kind == "index":
        return [c.text for c in env.index.chunks]
    return []


class FaultyHandler:
    """`inner`, with the stage's fault rules applied to each task first."""

    def __init__(self, inner: StageHandler, faults: Faults) -> None:
        self.stage = inner.stage
        self._inner = inner
        self._faults = faults

    async def handle(self, tasks: Sequence[Task]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = [None] * len(tasks)
        clean: list[int] = []
        for i, task in enumerate(tasks):
            try:
                stall_s = self._faults.check(task_texts(task), task.attempt)  # poison raises
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
