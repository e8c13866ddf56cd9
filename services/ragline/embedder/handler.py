"""The embedder's queue work: embed the chunks of a whole batch of tasks at once, across jobs,
then publish one index task per embed task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ragline import metrics
from ragline.broker.base import Broker
from ragline.embedder.text_encoder import EncodeStats, TextEncoder
from ragline.jobs.model import Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope
from ragline.stage.runner import Task
from ragline.tracing import batch_step, enabled


class EmbedHandler:
    stage = Stage.EMBED

    def __init__(
        self,
        broker: Broker,
        jobs: JobStore,
        encoder: TextEncoder,
        max_batch_tokens: int,
    ) -> None:
        self._broker = broker
        self._jobs = jobs
        self._encoder = encoder
        self._max_batch_tokens = max_batch_tokens

    async def handle(self, tasks: Sequence[Task]) -> list[BaseException | None]:
        texts = [c.text for t in tasks for c in t.envelope.embed.chunks]
        spans = [t.trace for t in tasks]
        if enabled():
            # Each task's wait for a model batch: from its publication (queue, gathering and
            # the batches before it) until the forward pass that takes it begins.
            now = time.time_ns()
            for t in tasks:
                t.trace.record(
                    "ragline.embed.batch_wait",
                    min(t.envelope.enqueue_time.ToNanoseconds(), now),
                    now,
                    {"ragline.chunks": len(t.envelope.embed.chunks)},
                    None,
                )
        stats = EncodeStats()
        with batch_step(spans, "ragline.embed.forward", {"ragline.batch_chunks": len(texts)}):
            vectors = await asyncio.to_thread(
                self._encoder.encode,
                texts,
                max_batch_tokens=self._max_batch_tokens,
                stats=stats,
            )
        metrics.EMBEDDED_TOKENS.inc(stats.tokens)
        metrics.PADDED_TOKENS.inc(stats.padded_tokens)
        for seconds in stats.batch_seconds:
            metrics.MODEL_BATCH_SECONDS.observe(seconds)
        bodies = []
        row = 0
        for task in tasks:
            count = len(task.envelope.embed.chunks)
            bodies.append(
                envelope.index_task(task.envelope, vectors[row : row + count], task.trace.carrier())
            )
            row += count
        # Progress first, then the index tasks: a job is never seen completed with chunks still
        # counted as unembedded. A crash in between redoes the batch; the bitmaps count it once.
        await self._jobs.mark_many(
            "embedded",
            [
                (t.job_id, [c.chunk_index for c in t.envelope.embed.chunks], t.attempt)
                for t in tasks
            ],
        )
        await self._broker.publish(envelope.queue_name(Stage.INDEX), bodies)
        # Counted once published: a batch that fails before is counted when it is redone.
        metrics.EMBEDDED_CHUNKS.inc(len(texts))
        return [None] * len(tasks)
