"""Operating the dead-letter queues: list with paging, requeue, purge."""

from __future__ import annotations

from collections.abc import Sequence

from ragline.broker.base import Broker, DeadLetter
from ragline.errors import InvalidArgument, PermanentTaskError
from ragline.jobs.model import Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope

MAX_PAGE = 1000


class DeadLetterOps:
    def __init__(self, broker: Broker, jobs: JobStore) -> None:
        self._broker = broker
        self._jobs = jobs

    async def list(
        self, stage: Stage, page_size: int, page_token: str
    ) -> tuple[list[tuple[DeadLetter, str]], str]:
        """One page of (dead letter, document id), and the token of the next page ("" at the end)."""
        if page_size == 0:
            page_size = 100
        if not 1 <= page_size <= MAX_PAGE:
            raise InvalidArgument(
                "page_size", f"must be between 1 and {MAX_PAGE} (got {page_size})"
            )
        letters = await self._broker.list_dead_letters(
            envelope.queue_name(stage), limit=page_size + 1, after=page_token
        )
        page, more = letters[:page_size], len(letters) > page_size
        return [(d, _document_id(d.body)) for d in page], (page[-1].dead_letter_id if more else "")

    async def requeue(self, stage: Stage, ids: Sequence[str]) -> int:
        """Puts dead letters back on their queue with a fresh attempt count and reopens their jobs."""
        queue = envelope.queue_name(stage)
        wanted = set(ids)
        after = ""
        while True:
            letters = await self._broker.list_dead_letters(queue, limit=MAX_PAGE, after=after)
            for letter in letters:
                if letter.job_id and (not wanted or letter.dead_letter_id in wanted):
                    await self._jobs.reopen(letter.job_id)
            if len(letters) < MAX_PAGE:
                break
            after = letters[-1].dead_letter_id
        return await self._broker.requeue_dead_letters(queue, ids, transform=envelope.fresh_start)

    async def purge(self, stage: Stage, ids: Sequence[str]) -> int:
        return await self._broker.purge_dead_letters(envelope.queue_name(stage), ids)


def _document_id(body: bytes) -> str:
    try:
        env = envelope.decode(body)
    except PermanentTaskError:
        return ""
    task = getattr(env, env.WhichOneof("task") or "chunk")
    return str(task.document.document_id)
