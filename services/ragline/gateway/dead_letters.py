"""Operating the dead-letter queues: list with paging, requeue, purge, each within one tenant.

The queues are shared by every tenant; a dead letter's tenant is the one its task names. A
tenant's admin sees and touches its own letters only, and `tenant=None` (the operator) all of
them. A letter whose body cannot be read names no tenant, so only the operator sees it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragline.broker.base import DeadLetter, DeadLetterAdmin, dead_letter_batches
from ragline.errors import InvalidArgument, PermanentTaskError
from ragline.jobs.model import Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope
from ragline.tenants import tenant_or_default

MAX_PAGE = 1000
# Letters read per broker call while looking for one tenant's among everyone's.
SCAN_BATCH = 1000
# Most letters one ListDeadLetters call reads for one tenant: past this it answers a short page
# with a next token, so a tenant with few letters in a huge queue is not one unbounded call.
MAX_SCAN = 20_000


class DeadLetterOps:
    def __init__(self, broker: DeadLetterAdmin, jobs: JobStore) -> None:
        self._broker = broker
        self._jobs = jobs

    async def list(
        self, stage: Stage, page_size: int, page_token: str, *, tenant: str | None
    ) -> tuple[list[tuple[DeadLetter, str]], str]:
        """One page of `tenant`'s (dead letter, document id), and the token of the next page ("" at
        the end); `tenant=None` lists every tenant's."""
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
        queue = envelope.queue_name(stage)
        if tenant is None:
            letters = await self._broker.list_dead_letters(
                queue, limit=page_size + 1, after=page_token
            )
            page, more = letters[:page_size], len(letters) > page_size
            token = page[-1].dead_letter_id if more else ""
            return [(d, _document_id(d.body)) for d in page], token
        found: list[tuple[DeadLetter, str]] = []
        scanned = 0
        batches = dead_letter_batches(self._broker, queue, after=page_token, size=SCAN_BATCH)
        async for batch in batches:
            for letter in batch:
                owner = _owner(letter.body)
                if owner is None or owner[0] != tenant:
                    continue
                if len(found) == page_size:
                    # One more of the tenant's: the next page starts after this page's last.
                    return found, found[-1][0].dead_letter_id
                found.append((letter, owner[1]))
            scanned += len(batch)
            if scanned >= MAX_SCAN:
                # The scan stopped short: the next page starts where it did.
                return found, batch[-1].dead_letter_id
        return found, ""

    async def requeue(self, stage: Stage, ids: Sequence[str], *, tenant: str | None) -> int:
        """Puts `tenant`'s dead letters (all of them when `ids` is empty; every tenant's when
        `tenant` is None) back on their queue with a fresh attempt count, then reopens the jobs
        of exactly those the broker requeued. Returns how many. Another tenant's ids are skipped,
        as ids that are not there are.

        Requeue first: if it fails, no job was touched and every letter is still dead. If the
        reopening fails after it, the tasks run anyway and still end their jobs (a FAILED job
        completes like an ACTIVE one), so the jobs only show FAILED for a while. (Left open: a
        task that fails for good again in the moment before its job is reopened leaves that job
        ACTIVE; it takes a worker's whole read-fail-dead-letter cycle within one round trip.)
        """
        self._check_ids(ids)
        queue = envelope.queue_name(stage)
        if tenant is not None:
            ids = await _owned(self._broker, queue, ids, tenant)
            if not ids:
                return 0  # an empty list would mean every letter to the broker
        requeued = await self._broker.requeue_dead_letters(
            queue, ids, transform=envelope.fresh_start
        )
        for job_id in dict.fromkeys(d.job_id for d in requeued if d.job_id):
            await self._jobs.reopen(job_id)
        return len(requeued)

    async def purge(self, stage: Stage, ids: Sequence[str], *, tenant: str | None) -> int:
        """Deletes `tenant`'s dead letters, chosen as `requeue` chooses them. Returns how many."""
        self._check_ids(ids)
        queue = envelope.queue_name(stage)
        if tenant is not None:
            ids = await _owned(self._broker, queue, ids, tenant)
            if not ids:
                return 0
        return await self._broker.purge_dead_letters(queue, ids)

    def _check_ids(self, ids: Sequence[str]) -> None:
        for i, dead_letter_id in enumerate(ids):
            if not self._broker.is_dead_letter_id(dead_letter_id):
                raise InvalidArgument(
                    f"dead_letter_ids[{i}]",
                    f"{dead_letter_id[:80]!r} is not a dead-letter id; use the ids "
                    "ListDeadLetters returns, or send none to mean all",
                )


async def _owned(broker: DeadLetterAdmin, queue: str, ids: Sequence[str], tenant: str) -> list[str]:
    """The ids among `ids` (every id, when empty) of `tenant`'s letters in `queue`."""
    wanted = set(ids)
    return [
        d.dead_letter_id
        async for batch in dead_letter_batches(broker, queue, size=SCAN_BATCH)
        for d in batch
        if _tenant(d.body) == tenant and (not wanted or d.dead_letter_id in wanted)
    ]


def _owner(body: bytes) -> tuple[str, str] | None:
    """(tenant, document id) of a letter's task; None for a body that cannot be read."""
    try:
        env = envelope.decode(body)
    except PermanentTaskError:
        return None
    ref = getattr(env, env.WhichOneof("task") or "chunk").document
    return tenant_or_default(ref.tenant), str(ref.document_id)


def _document_id(body: bytes) -> str:
    owner = _owner(body)
    return "" if owner is None else owner[1]


def _tenant(body: bytes) -> str | None:
    """The tenant a letter's task names; None for a body that cannot be read."""
    owner = _owner(body)
    return None if owner is None else owner[0]
