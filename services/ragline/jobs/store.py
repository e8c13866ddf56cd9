"""The job store on Redis: job records, per-chunk progress, idempotency keys, the open-jobs
index and the documents of open jobs, which their chunk tasks refer to (ragline.jobs.keys lists
the keys). Document versions are ragline.jobs.versions'.

Progress counts bits, not increments, so a chunk delivered twice is counted once. Every change
runs as one Lua script, so concurrent stages never interleave half-updates.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from ragline.config import Settings
from ragline.errors import NotFound, StoreUnavailable
from ragline.ids import new_id
from ragline.jobs.keys import Keys
from ragline.jobs.model import ALLOWED_FROM, Job, JobProgress, JobState, Stage
from ragline.redis_client import answered, connect, text
from ragline.redis_scripts import lua_script
from ragline.stage.envelope import DOCUMENT_VERSION_TAGS
from ragline.tenants import DEFAULT_TENANT, tenant_or_default

REQUEST_TTL_S = 24 * 3600
# Finished jobs stay readable this long by default (RAGLINE_JOB_RETENTION_S), then Redis drops
# them. Jobs that have not finished never expire.
FINISHED_JOB_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class TaskTarget:
    """Where create_many's script puts each new job's chunk task, in the same step as the job.

    Either `stream`, a Redis Streams queue on this same Redis (the task is queued at once), or
    `outbox` and `leases`, an outbox a relay publishes to another broker from: a hash of task
    bodies by job id and a sorted set of lease expiries, the writer holding each new entry for
    `lease_s` seconds (see ragline.jobs.outbox).
    """

    stream: str = ""
    outbox: str = ""
    leases: str = ""
    lease_s: float = 0.0

    @property
    def mode(self) -> str:
        return "stream" if self.stream else "outbox" if self.outbox else ""


@dataclass(frozen=True)
class Republished:
    """What publishing a stuck job's chunk task again did (JobStore.republish)."""

    # "republished", "left" (the job changed or finished meanwhile, or its task waits in the
    # outbox), "not kept" (its document is not in the store) or "spent" (its repairs ran out).
    outcome: str
    repairs: int = 0
    why: str = ""


@dataclass(frozen=True)
class MarkResult:
    """What marking chunks done left behind."""

    count: int
    total: int
    state: JobState

    @property
    def all_done(self) -> bool:
        return self.total > 0 and self.count >= self.total


class JobStore:
    """Job records in Redis. Every method raises StoreUnavailable when Redis does not answer."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        namespace: str = "ragline",
        retention_s: float = FINISHED_JOB_TTL_S,
    ) -> None:
        self._r = client
        self._ns = namespace
        self.keys = Keys(namespace)
        # Whole seconds: Redis's EXPIRE takes no fractions.
        self._retention_s = max(1, round(retention_s))
        self._create_many = client.register_script(lua_script("jobs", "create_many"))
        self._transition = client.register_script(lua_script("jobs", "transition"))
        self._set_total = client.register_script(lua_script("jobs", "set_total"))
        self._mark = client.register_script(lua_script("jobs", "mark"))
        self._note_error = client.register_script(lua_script("jobs", "note_error"))
        self._republish = client.register_script(lua_script("jobs", "republish"))

    @classmethod
    def from_url(
        cls, url: str, *, namespace: str = "ragline", retention_s: float = FINISHED_JOB_TTL_S
    ) -> JobStore:
        return cls(connect(url), namespace=namespace, retention_s=retention_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        """The deployment's job store: its Redis, namespace and retention of finished jobs."""
        return cls.from_url(
            settings.redis_url, namespace=settings.namespace, retention_s=settings.job_retention_s
        )

    @property
    def redis(self) -> aioredis.Redis:
        return self._r

    @property
    def namespace(self) -> str:
        return self._ns

    @property
    def retention_s(self) -> int:
        return self._retention_s

    async def close(self) -> None:
        await self._r.aclose()

    # -- jobs -------------------------------------------------------------------------------
    async def create(
        self, document_id: str, *, request_id: str = "", tenant: str = DEFAULT_TENANT
    ) -> tuple[Job, bool]:
        """Records a new job of `tenant` in ACCEPTED with the document's next version.

        With a request id seen in the last 24 h, returns that request's job instead (unless that
        job's record is gone: then the request makes a new one). Returns (job, created).
        """
        (result,) = await self.create_many([(document_id, request_id)], tenants=[tenant])
        return result

    async def create_many(
        self,
        items: Sequence[tuple[str, str]],
        *,
        job_ids: Sequence[str] = (),
        tenants: Sequence[str] = (),
        tasks: Sequence[bytes] = (),
        contents: Sequence[bytes] = (),
        target: TaskTarget | None = None,
    ) -> list[tuple[Job, bool]]:
        """`create` for each (document_id, request_id) in `items`, in order, in one round trip.

        Repeats of a document get consecutive versions; a request id repeated within `items`
        returns the job its first occurrence made. Returns (job, created) per item. `tenants`
        names each item's tenant (all the default tenant's when empty): document versions and
        request ids are counted per tenant.

        `job_ids` names the jobs to make (new ids when empty). With a `target`, `tasks` holds
        one serialized chunk-task envelope per item, for that job and without its document
        version: the same script gives it the job's version and writes it to the target for
        every job it makes (not for a request seen before). `contents` holds each document's
        bytes (empty when not given), which the same script keeps beside the job, with its
        finished task, until the job ends (the task refers to them: see
        ragline.stage.envelope.chunk_task).
        """
        if not items:
            return []
        if target is not None and len(tasks) != len(items):
            raise ValueError("create_many needs one task per item when it has a target")
        if contents and len(contents) != len(items):
            raise ValueError("create_many needs one content per item when it has any")
        now = time.time()
        prefix = self.keys.job_prefix
        names = job_ids or [new_id() for _ in items]
        owners = tenants or [DEFAULT_TENANT] * len(items)
        ids = [
            (job_id, tenant, d, r)
            for job_id, tenant, (d, r) in zip(names, owners, items, strict=True)
        ]
        target = target or TaskTarget()
        keys: list[str] = [target.stream or target.outbox, target.leases, self.keys.open_jobs]
        args: list[Any] = [
            now,
            REQUEST_TTL_S,
            prefix,
            target.mode,
            target.lease_s,
            self._retention_s,
            *DOCUMENT_VERSION_TAGS,
        ]
        for i, (job_id, tenant, document_id, request_id) in enumerate(ids):
            keys += [
                prefix + job_id,
                self.keys.request(tenant, request_id) if request_id else "",
                self.keys.doc(tenant, document_id),
                self.keys.content(job_id),
            ]
            args += [
                job_id,
                document_id,
                request_id,
                tenant,
                tasks[i] if tasks else b"",
                contents[i] if contents else b"",
            ]
        replies = await self._call(self._create_many, keys, args)
        out: list[tuple[Job, bool]] = []
        for (job_id, tenant, document_id, request_id), reply in zip(ids, replies, strict=True):
            if int(reply[0]) == 1:
                job = Job(
                    job_id=job_id,
                    tenant=tenant,
                    document_id=document_id,
                    document_version=int(reply[1]),
                    state=JobState.ACCEPTED,
                    progress=JobProgress(),
                    request_id=request_id,
                    create_time=now,
                    update_time=now,
                )
                out.append((job, True))
                continue
            flat = reply[1]
            out.append((_job_from_hash(dict(zip(flat[::2], flat[1::2], strict=True))), False))
        return out

    async def abandon(self, jobs: Sequence[Job], stage: Stage, error: str) -> None:
        """Marks jobs FAILED at `stage` with `error` and forgets their request ids, in one round
        trip: for jobs made but never queued, so a retry of the same request makes a new job."""
        if not jobs:
            return
        allowed = sorted(ALLOWED_FROM[JobState.FAILED])
        now = time.time()
        calls: list[tuple[list[str], list[Any]]] = []
        for job in jobs:
            calls.append(
                (
                    [
                        self.keys.job(job.job_id),
                        self.keys.events(job.job_id),
                        *self.keys.bitmaps(job.job_id),
                        self.keys.open_jobs,
                        self.keys.content(job.job_id),
                    ],
                    [
                        JobState.FAILED.value,
                        now,
                        1,
                        self._retention_s,
                        len(allowed),
                        *[s.value for s in allowed],
                        "last_error",
                        error,
                        "last_error_stage",
                        stage.value,
                        "attempts",
                        job.attempts,
                    ],
                )
            )
        forget = [self.keys.request(j.tenant, j.request_id) for j in jobs if j.request_id]
        await self._eval_many(self._transition, calls, delete=forget)

    async def get(self, job_id: str) -> Job:
        """The job, or NotFound."""
        raw = await self._call_plain(self._r.hgetall(self.keys.job(job_id)))
        if not raw:
            raise self.not_found(job_id)
        return _job_from_hash(raw)

    def not_found(self, job_id: str) -> NotFound:
        """The error for a job that is not there (or not the caller's: the same words)."""
        return NotFound(
            f"job {job_id!r} does not exist (or finished over {_days(self._retention_s)} ago)"
        )

    async def get_many(self, job_ids: Iterable[str]) -> list[Job | None]:
        ids = list(job_ids)
        async with self._r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            rows = await self._call_plain(pipe.execute())
        return [_job_from_hash(r) if r else None for r in rows]

    async def states(self, job_ids: Iterable[str]) -> list[JobState | None]:
        """Each job's state, in order; None for one that does not exist. One round trip, and
        one field a job: what a stage checks of every batch (get_many reads whole records)."""
        ids = list(job_ids)
        async with self._r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.keys.job(job_id), "state")
            rows = await self._call_plain(pipe.execute())
        return [JobState(text(r)) if r else None for r in rows]

    async def stuck_jobs(self, idle_s: float, *, limit: int = 1000) -> list[str]:
        """Ids of unfinished jobs that nothing has changed for `idle_s` or more, longest idle
        first (at most `limit`). Jobs made before this index existed are not in it."""
        cutoff = time.time() - idle_s
        ids = await self._call_plain(
            self._r.zrangebyscore(self.keys.open_jobs, "-inf", cutoff, start=0, num=limit)
        )
        return [text(i) for i in ids]

    async def count_stuck(self, idle_s: float) -> int:
        """How many unfinished jobs nothing has changed for `idle_s` or more."""
        return int(
            await self._call_plain(
                self._r.zcount(self.keys.open_jobs, "-inf", time.time() - idle_s)
            )
        )

    async def move(self, job_id: str, target: JobState, **fields: Any) -> bool:
        """Moves a job to `target` if the state machine allows it from where it stands.

        Extra `fields` (e.g. last_error) are written in the same step. Returns whether it moved.
        """
        allowed = sorted(ALLOWED_FROM[target])
        flat: list[Any] = []
        for k, v in fields.items():
            flat += [k, v]
        result = await self._call(
            self._transition,
            [
                self.keys.job(job_id),
                self.keys.events(job_id),
                *self.keys.bitmaps(job_id),
                self.keys.open_jobs,
                self.keys.content(job_id),
            ],
            [
                target.value,
                time.time(),
                int(target.is_terminal),
                self._retention_s,
                len(allowed),
                *[s.value for s in allowed],
                *flat,
            ],
        )
        if int(result) == -1:
            raise NotFound(f"job {job_id!r} does not exist")
        return bool(int(result))

    async def fail(self, job_id: str, stage: Stage, error: str, attempts: int) -> bool:
        """Moves a job to FAILED with the error that ended it."""
        return await self.move(
            job_id,
            JobState.FAILED,
            last_error=error,
            last_error_stage=stage.value,
            attempts=attempts,
        )

    async def note_error(self, job_id: str, stage: Stage, error: str, attempts: int) -> None:
        """Records a retryable error on a job that goes on (shown as last_error while it retries).
        A job that no longer exists is left alone."""
        await self._call(
            self._note_error,
            [self.keys.job(job_id), self.keys.events(job_id), self.keys.open_jobs],
            [error, stage.value, attempts, time.time(), job_id],
        )

    async def touch(self, job_ids: Iterable[str]) -> None:
        """Marks unfinished jobs as changed now in the index of open jobs, without changing
        their records: a worker holds their tasks, so they are not stuck (RabbitMQ does not
        count a task in a worker's hands, so without this one held longer than
        RAGLINE_STUCK_AFTER_S would look lost). A finished job, no longer in the index, is not
        put back."""
        now = time.time()
        mapping = dict.fromkeys(job_ids, now)
        if mapping:
            await self._call_plain(self._r.zadd(self.keys.open_jobs, mapping, xx=True))

    async def set_total(self, job_id: str, total: int) -> None:
        """Records how many chunks the document was cut into, and marks the job ACTIVE."""
        await self._call(
            self._set_total,
            [self.keys.job(job_id), self.keys.events(job_id), self.keys.open_jobs],
            [total, time.time(), job_id],
        )

    async def set_totals(self, totals: Sequence[tuple[str, int]]) -> None:
        """set_total for many (job id, total) in one round trip."""
        if not totals:
            return
        now = time.time()
        await self._eval_many(
            self._set_total,
            [
                ([self.keys.job(j), self.keys.events(j), self.keys.open_jobs], [total, now, j])
                for j, total in totals
            ],
        )

    async def mark_embedded(
        self, job_id: str, indices: Iterable[int], attempt: int = 1
    ) -> MarkResult:
        return await self._mark_bits(job_id, "embedded", indices, attempt)

    async def mark_indexed(
        self, job_id: str, indices: Iterable[int], attempt: int = 1
    ) -> MarkResult:
        return await self._mark_bits(job_id, "indexed", indices, attempt)

    async def mark_many(
        self, kind: str, marks: Sequence[tuple[str, Iterable[int], int]]
    ) -> list[MarkResult | None]:
        """mark_embedded / mark_indexed ("embedded" / "indexed") for many (job id, chunk
        indices, attempt) in one round trip. None for a job that does not exist."""
        replies = await self._eval_many(
            self._mark,
            [
                (
                    [
                        self.keys.job(job_id),
                        self.keys.bitmap(job_id, kind),
                        self.keys.events(job_id),
                        self.keys.open_jobs,
                    ],
                    [f"chunks_{kind}", time.time(), attempt, job_id, *indices],
                )
                for job_id, indices, attempt in marks
            ],
        )
        return [
            None if int(r[0]) == -1 else MarkResult(int(r[0]), int(r[1]), JobState(text(r[2])))
            for r in replies
        ]

    async def _mark_bits(
        self, job_id: str, kind: str, indices: Iterable[int], attempt: int
    ) -> MarkResult:
        (marked,) = await self.mark_many(kind, [(job_id, list(indices), attempt)])
        if marked is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return marked

    async def watch(self, job_id: str, poll_s: float = 1.0) -> AsyncIterator[Job]:
        """Yields the job now and after every change, until it reaches a terminal state.

        Pub/sub wakes the watcher; a periodic re-read covers any notification missed.
        """
        pubsub = self._r.pubsub()
        await pubsub.subscribe(self.keys.events(job_id))
        try:
            last: Job | None = None
            while True:
                job = await self.get(job_id)
                if job != last:
                    yield job
                    last = job
                if job.state.is_terminal:
                    return
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll_s)
                # Drain a burst of notifications so one re-read covers them all.
                while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0):
                    pass
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def document_body(self, job_id: str) -> bytes | None:
        """The bytes of the job's document, kept while the job is open; None once it has ended
        (or for a job accepted by a gateway that put the bytes in the task instead)."""
        body = await self._call_plain(self._r.hget(self.keys.content(job_id), "body"))
        return None if body is None else bytes(body)

    async def kept_tasks(self, job_ids: Iterable[str]) -> dict[str, bytes]:
        """The chunk task kept beside each job whose document the store holds, by job id (jobs
        without one, ended or accepted before documents were kept, are left out)."""
        ids = list(job_ids)
        async with self._r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.keys.content(job_id), "task")
            rows = await self._call_plain(pipe.execute())
        return {job_id: bytes(task) for job_id, task in zip(ids, rows, strict=True) if task}

    async def republish(
        self,
        job_id: str,
        task: bytes,
        *,
        unchanged_since: float,
        max_repairs: int,
        target: TaskTarget,
    ) -> Republished:
        """Writes `task` (the job's chunk task, made fresh) to `target` again, counts a repair
        on the job and touches its last change, in one step, if nothing has changed the job
        since `unchanged_since` and fewer than `max_repairs` repairs were made before."""
        if target.mode not in ("stream", "outbox"):
            raise ValueError("republish needs a chunk stream or an outbox to write to")
        code, value = await self._call(
            self._republish,
            [
                self.keys.job(job_id),
                self.keys.events(job_id),
                self.keys.open_jobs,
                self.keys.content(job_id),
                target.stream or target.outbox,
                target.leases,
            ],
            [unchanged_since, time.time(), max_repairs, target.mode, job_id, task],
        )
        code = int(code)
        if code == 1:
            return Republished("republished", repairs=int(value))
        if code == -1:
            return Republished("not kept")
        if code == -2:
            return Republished("spent", repairs=int(value))
        return Republished("left", why=text(value))

    # -- requeued failures --------------------------------------------------------------------
    async def reopen(self, job_id: str) -> bool:
        """Moves a FAILED job back to ACTIVE, when its dead letter is requeued."""
        return await self.move(job_id, JobState.ACTIVE)

    # -- plumbing ---------------------------------------------------------------------------
    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        return await answered(script(keys=keys, args=args), "the job store")

    async def _eval_many(
        self, script: Any, calls: Sequence[tuple[list[str], list[Any]]], delete: Sequence[str] = ()
    ) -> list[Any]:
        """Runs `script` once per (keys, args) in one pipelined round trip (not a transaction),
        then DELs `delete`; returns the script's replies in order.

        EVALSHA straight away: a pipeline given the Script object would first ask SCRIPT EXISTS,
        a second round trip. Calls the server answers NOSCRIPT (it lost its script cache) did not
        run; they are run again once the script is loaded.
        """
        pending = list(range(len(calls)))
        replies: list[Any] = [None] * len(calls)
        try:
            for attempt in range(2):
                async with self._r.pipeline(transaction=False) as pipe:
                    for i in pending:
                        keys, args = calls[i]
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    if delete and attempt == 0:
                        pipe.delete(*delete)
                    results = await pipe.execute(raise_on_error=False)
                missing = []
                for i, result in zip(pending, results, strict=False):
                    if isinstance(result, NoScriptError) and attempt == 0:
                        missing.append(i)
                    elif isinstance(result, Exception):
                        raise result
                    else:
                        replies[i] = result
                if delete and attempt == 0 and isinstance(results[-1], Exception):
                    raise results[-1]
                if not missing:
                    return replies
                script.sha = await self._r.script_load(script.script)
                pending = missing
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the job store (Redis) did not answer: {exc}") from exc
        raise AssertionError("unreachable")

    async def _call_plain(self, awaitable: Any) -> Any:
        return await answered(awaitable, "the job store")


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} days" if days >= 1 else f"{seconds:g} s"


def _job_from_hash(raw: dict[bytes, bytes]) -> Job:
    h = {text(k): text(v) for k, v in raw.items()}
    stage = h.get("last_error_stage", "")
    return Job(
        job_id=h["job_id"],
        # A record made before tenancy names none: it is the default tenant's.
        tenant=tenant_or_default(h.get("tenant", "")),
        document_id=h["document_id"],
        document_version=int(h.get("document_version", 0)),
        state=JobState(h["state"]),
        progress=JobProgress(
            chunks_total=int(h.get("chunks_total", 0)),
            chunks_embedded=int(h.get("chunks_embedded", 0)),
            chunks_indexed=int(h.get("chunks_indexed", 0)),
        ),
        last_error=h.get("last_error", ""),
        last_error_stage=Stage(stage) if stage else None,
        attempts=int(h.get("attempts", 1)),
        request_id=h.get("request_id", ""),
        create_time=float(h.get("create_time", 0)),
        update_time=float(h.get("update_time", 0)),
        finish_time=float(h.get("finish_time", 0)),
        repairs=int(h.get("repairs", 0)),
    )
