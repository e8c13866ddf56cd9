"""Operating the dead-letter queues: list with paging, requeue, purge."""

from __future__ import annotations

from collections.abc import Sequence

from ragline.broker.base import DeadLetter, DeadLetterAdmin
from ragline.errors import InvalidArgument, PermanentTaskError
from ragline.jobs.model import Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope

MAX_PAGE = 1000


class DeadLetterOps:
    def __init__(self, broker: DeadLetterAdmin, jobs: JobStore) -> None:
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
        if page_token and not self._broker.is_dead_letter_id(page_token):
            raise InvalidArgument(
                "page_token",
                "is not a token this service handed out; pass the next_page_token of the "
                "previous page, or leave it empty for the first page",
            )
        letters = await self._broker.list_dead_letters(
            envelope.queue_name(stage), limit=page_size + 1, after=page_token
        )
        page, more = letters[:page_size], len(letters) > page_size
        return [(d, _document_id(d.body)) for d in page], (page[-1].dead_letter_id if more else "")

    async def requeue(self, stage: Stage, ids: Sequence[str]) -> int:
        """Puts dead letters (all when `ids` is empty) back on their queue with a fresh attempt
        count, then reopens the jobs of exactly those the broker requeued. Returns how many.

        Requeue first: if it fails, no job was touched and every letter is still dead. If the
        reopening fails after it, the tasks run anyway and still end their jobs (a FAILED job
        completes like an ACTIVE one), so the jobs only show FAILED for a while. (Left open: a
        task that fails for good again in the moment before its job is reopened leaves that job
        ACTIVE; it takes a worker's whole read-fail-dead-letter cycle within one round trip.)
        """
        self._check_ids(ids)
        requeued = await self._broker.requeue_dead_letters(
            envelope.queue_name(stage), ids, transform=envelope.fresh_start
        )
        for job_id in dict.fromkeys(d.job_id for d in requeued if d.job_id):
            await self._jobs.reopen(job_id)
        return len(requeued)

    async def purge(self, stage: Stage, ids: Sequence[str]) -> int:
        self._check_ids(ids)
        return await self._broker.purge_dead_letters(envelope.queue_name(stage), ids)

    def _check_ids(self, ids: Sequence[str]) -> None:
        for i, dead_letter_id in enumerate(ids):
            if not self._broker.is_dead_letter_id(dead_letter_id):
                raise InvalidArgument(
                    f"dead_letter_ids[{i}]",
                    f"{dead_letter_id[:80]!r} is not a dead-letter id; use the ids "
                    "ListDeadLetters returns, or send none to mean all",
                )


def _document_id(body: bytes) -> str:
    try:
        env = envelope.decode(body)
    except PermanentTaskError:
        return ""
    task = getattr(env, env.WhichOneof("task") or "chunk")
    return str(task.document.document_id)
