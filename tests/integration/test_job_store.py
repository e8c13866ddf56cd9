"""The job store and the stage runner's crash-loop counter against a real Redis.

The stage runner's own tests are tests/unit/test_stage_runner.py (in memory) and
tests/integration/test_stage_runner_on_brokers.py (on each real broker)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from ragline.errors import NotFound
from ragline.jobs.model import ALLOWED_FROM, Job, JobState, Stage
from ragline.jobs.store import FINISHED_JOB_TTL_S, JobStore
from ragline.jobs.versions import VersionStore
from ragline.stage.solo_runs import SOLO_RUN_TTL_S, SoloRuns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def versions_of(store: JobStore) -> VersionStore:
    return VersionStore.beside(store)


@pytest.fixture
def store(redis_client: aioredis.Redis, namespace: str) -> JobStore:
    return JobStore(redis_client, namespace=namespace)


# -- create and idempotency --------------------------------------------------------------------


async def test_create_gives_accepted_and_consecutive_versions(store: JobStore) -> None:
    before = time.time()
    jobs = [(await store.create("doc-a"))[0] for _ in range(3)]
    assert [j.document_version for j in jobs] == [1, 2, 3]
    assert all(j.state is JobState.ACCEPTED for j in jobs)
    assert len({j.job_id for j in jobs}) == 3
    first = jobs[0]
    assert first.document_id == "doc-a"
    assert first.progress.chunks_total == 0
    assert first.attempts == 1
    assert first.last_error == ""
    assert first.last_error_stage is None
    assert first.finish_time == 0.0
    assert before <= first.create_time <= time.time()
    # Another document counts from 1 on its own.
    other, created = await store.create("doc-b")
    assert created
    assert other.document_version == 1
    versions = await versions_of(store).document_versions("default", "doc-a")
    assert versions is not None
    assert (versions.seq, versions.live, versions.floor) == (3, 0, 0)
    assert await versions_of(store).document_versions("default", "never-seen") is None


async def test_tenants_count_versions_and_request_ids_apart(store: JobStore) -> None:
    a1, _ = await store.create("handbook.pdf", request_id="r", tenant="acme")
    b1, created = await store.create("handbook.pdf", request_id="r", tenant="globex")
    a2, _ = await store.create("handbook.pdf", tenant="acme")
    again, created_again = await store.create("handbook.pdf", request_id="r", tenant="acme")

    assert created and b1.job_id != a1.job_id  # the same request id, another tenant's job
    assert (a1.document_version, a2.document_version, b1.document_version) == (1, 2, 1)
    assert not created_again and again.job_id == a1.job_id
    assert (await store.get(a1.job_id)).tenant == "acme"
    assert (await store.get(b1.job_id)).tenant == "globex"
    versions = versions_of(store)
    assert (await versions.document_versions("acme", "handbook.pdf")).seq == 2  # type: ignore[union-attr]
    assert (await versions.document_versions("globex", "handbook.pdf")).seq == 1  # type: ignore[union-attr]
    assert await versions.document_versions("default", "handbook.pdf") is None


async def test_a_job_recorded_before_tenancy_is_the_default_tenants(
    store: JobStore, redis_client: aioredis.Redis
) -> None:
    job, _ = await store.create("old-doc", request_id="old-req")
    await redis_client.hdel(store.keys.job(job.job_id), "tenant")  # as records were written

    assert (await store.get(job.job_id)).tenant == "default"
    # Its document and request id keys are the default tenant's, unchanged by tenancy.
    assert await redis_client.exists(f"{store.namespace}:doc:old-doc") == 1
    assert await redis_client.get(f"{store.namespace}:request:old-req") == job.job_id.encode()
    again, created = await store.create("old-doc", request_id="old-req")
    assert not created and again.job_id == job.job_id


async def test_request_id_returns_the_first_job_without_a_new_version(store: JobStore) -> None:
    first, created = await store.create("doc", request_id="req-1")
    assert created
    again, created_again = await store.create("doc", request_id="req-1")
    assert not created_again
    assert again.job_id == first.job_id
    assert again.document_version == 1
    assert again.request_id == "req-1"
    versions = await versions_of(store).document_versions("default", "doc")
    assert versions is not None and versions.seq == 1
    # A different request id, or none, makes a new job and version.
    third, created3 = await store.create("doc", request_id="req-2")
    assert created3 and third.document_version == 2
    fourth, _ = await store.create("doc")
    assert fourth.document_version == 3


async def test_get_unknown_is_not_found(store: JobStore) -> None:
    with pytest.raises(NotFound):
        await store.get("no-such-job")
    with pytest.raises(NotFound):
        await store.move("no-such-job", JobState.ACTIVE)
    with pytest.raises(NotFound):
        await store.mark_embedded("no-such-job", [0])
    assert await store.get_many(["no-such-job"]) == [None]
    assert await store.states(["no-such-job"]) == [None]


async def test_states_reads_each_jobs_state_in_order(store: JobStore) -> None:
    first, _ = await store.create("doc-a")
    second, _ = await store.create("doc-b")
    await store.move(second.job_id, JobState.CANCELLED)
    assert await store.states([second.job_id, "gone", first.job_id]) == [
        JobState.CANCELLED,
        None,
        JobState.ACCEPTED,
    ]


# -- progress ----------------------------------------------------------------------------------


async def test_set_total_moves_to_active(store: JobStore) -> None:
    job, _ = await store.create("doc")
    await store.set_total(job.job_id, 7)
    got = await store.get(job.job_id)
    assert got.state is JobState.ACTIVE
    assert got.progress.chunks_total == 7
    assert got.update_time >= job.update_time


async def test_chunks_delivered_twice_are_counted_once(store: JobStore) -> None:
    job, _ = await store.create("doc")
    await store.set_total(job.job_id, 4)

    r = await store.mark_embedded(job.job_id, [0, 0, 1])
    assert (r.count, r.total, r.state, r.all_done) == (2, 4, JobState.ACTIVE, False)
    r = await store.mark_embedded(job.job_id, [1, 0])  # a redelivered batch
    assert (r.count, r.all_done) == (2, False)
    r = await store.mark_embedded(job.job_id, [2])
    assert (r.count, r.all_done) == (3, False)
    r = await store.mark_embedded(job.job_id, [3, 3, 3])
    assert (r.count, r.all_done) == (4, True)
    r = await store.mark_embedded(job.job_id, [0, 1, 2, 3])
    assert (r.count, r.all_done) == (4, True)

    r = await store.mark_indexed(job.job_id, [3, 2])
    assert (r.count, r.all_done) == (2, False)
    r = await store.mark_indexed(job.job_id, [2, 3])
    assert (r.count, r.all_done) == (2, False)
    r = await store.mark_indexed(job.job_id, [0, 1, 1])
    assert (r.count, r.all_done) == (4, True)

    got = await store.get(job.job_id)
    assert got.progress.chunks_embedded == 4
    assert got.progress.chunks_indexed == 4


async def test_concurrent_marks_of_overlapping_chunks_count_each_once(store: JobStore) -> None:
    job, _ = await store.create("doc")
    await store.set_total(job.job_id, 100)
    # Each index but the first ten is in two batches.
    batches = [list(range(i, min(i + 20, 100))) for i in range(0, 100, 10)]
    results = await asyncio.gather(*(store.mark_indexed(job.job_id, b) for b in batches))
    assert sum(r.all_done for r in results) >= 1
    assert max(r.count for r in results) == 100
    assert (await store.get(job.job_id)).progress.chunks_indexed == 100


async def test_all_done_is_false_before_the_total_is_known(store: JobStore) -> None:
    job, _ = await store.create("doc")
    r = await store.mark_embedded(job.job_id, [0, 1])
    assert r.total == 0
    assert not r.all_done
    # Marking moves an accepted job to active too.
    assert r.state is JobState.ACTIVE


async def test_mark_records_the_highest_attempt(store: JobStore) -> None:
    job, _ = await store.create("doc")
    await store.mark_embedded(job.job_id, [0], attempt=3)
    await store.mark_embedded(job.job_id, [1], attempt=2)
    assert (await store.get(job.job_id)).attempts == 3


# -- transitions -------------------------------------------------------------------------------


async def test_move_forward_and_refuse_backwards(store: JobStore) -> None:
    job, _ = await store.create("doc")
    assert await store.move(job.job_id, JobState.ACTIVE)
    assert await store.move(job.job_id, JobState.COMPLETED)
    done = await store.get(job.job_id)
    assert done.state is JobState.COMPLETED
    assert done.finish_time > 0

    for target in (JobState.ACTIVE, JobState.ACCEPTED, JobState.FAILED, JobState.COMPLETED):
        assert await store.move(job.job_id, target) is False
    assert not await store.fail(job.job_id, Stage.INDEX, "late", 2)
    after = await store.get(job.job_id)
    assert after.state is JobState.COMPLETED
    assert after.last_error == ""
    assert after.finish_time == done.finish_time


async def test_a_late_set_total_or_mark_does_not_revive_a_finished_job(store: JobStore) -> None:
    job, _ = await store.create("doc")
    await store.fail(job.job_id, Stage.CHUNK, "bad", 1)
    await store.set_total(job.job_id, 3)
    await store.mark_embedded(job.job_id, [0, 1, 2])
    assert (await store.get(job.job_id)).state is JobState.FAILED


async def test_fail_records_the_error(store: JobStore) -> None:
    job, _ = await store.create("doc")
    await store.set_total(job.job_id, 2)
    before = time.time()
    assert await store.fail(job.job_id, Stage.EMBED, "the model ran out of memory", 4)
    got = await store.get(job.job_id)
    assert got.state is JobState.FAILED
    assert got.last_error == "the model ran out of memory"
    assert got.last_error_stage is Stage.EMBED
    assert got.attempts == 4
    assert before <= got.finish_time <= time.time()
    assert got.progress.chunks_total == 2


async def test_finished_jobs_expire_and_so_does_their_progress(
    store: JobStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    job, _ = await store.create("doc")
    await store.set_total(job.job_id, 2)
    await store.mark_embedded(job.job_id, [0, 1])
    await store.mark_indexed(job.job_id, [0, 1])
    await store.move(job.job_id, JobState.COMPLETED)
    key = f"{namespace}:job:{job.job_id}"
    assert 0 < await redis_client.ttl(key) <= FINISHED_JOB_TTL_S
    # The per-chunk bitmaps belong to the job: they must not outlive it in Redis forever.
    for kind in ("embedded", "indexed"):
        ttl = await redis_client.ttl(f"{key}:{kind}")
        assert 0 < ttl <= FINISHED_JOB_TTL_S, f"{key}:{kind} has ttl {ttl}"


async def test_finished_jobs_are_kept_as_long_as_the_retention_says(
    redis_client: aioredis.Redis, namespace: str
) -> None:
    store = JobStore(redis_client, namespace=namespace, retention_s=120)
    job, _ = await store.create("doc")
    key = f"{namespace}:job:{job.job_id}"
    assert await redis_client.ttl(key) == -1  # unfinished: never expires
    await store.set_total(job.job_id, 1)
    await store.mark_embedded(job.job_id, [0])
    assert await redis_client.ttl(key) == -1
    await store.fail(job.job_id, Stage.EMBED, "boom", 5)
    assert 100 < await redis_client.ttl(key) <= 120
    await store.reopen(job.job_id)  # requeued: in flight again, so it must not expire
    assert await redis_client.ttl(key) == -1
    await store.mark_indexed(job.job_id, [0])
    await versions_of(store).complete_version(job.job_id, "default", "doc", job.document_version)
    assert 100 < await redis_client.ttl(key) <= 120


async def test_the_open_jobs_index_follows_every_change_and_finds_the_stuck(
    store: JobStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    open_key = f"{namespace}:jobs:open"
    quiet, _ = await store.create("quiet")
    busy, _ = await store.create("busy")
    done, _ = await store.create("done")
    failed, _ = await store.create("failed")
    assert await redis_client.zcard(open_key) == 4
    await asyncio.sleep(0.3)
    # Each kind of change moves a job's score on; ending it takes it out.
    await store.set_total(busy.job_id, 2)
    await store.mark_embedded(busy.job_id, [0])
    await store.note_error(busy.job_id, Stage.INDEX, "milvus busy", 2)
    await store.set_total(done.job_id, 1)
    await store.mark_indexed(done.job_id, [0])
    await versions_of(store).complete_version(done.job_id, "default", "done", done.document_version)
    await store.fail(failed.job_id, Stage.CHUNK, "bad pdf", 1)
    assert await store.stuck_jobs(0.25) == [quiet.job_id]
    assert await store.count_stuck(0.25) == 1
    assert sorted(await store.stuck_jobs(0.0)) == sorted([quiet.job_id, busy.job_id])
    # A finished job's late marks (a redelivered task) never put it back.
    await store.mark_embedded(done.job_id, [0])
    await store.note_error(failed.job_id, Stage.CHUNK, "late", 2)
    assert await redis_client.zcard(open_key) == 2
    # A requeued failure is open again; cancelling closes it.
    await store.reopen(failed.job_id)
    assert failed.job_id in await store.stuck_jobs(0.0)
    await store.move(quiet.job_id, JobState.CANCELLED)
    assert quiet.job_id not in await store.stuck_jobs(0.0)


async def test_touch_keeps_a_job_in_hand_from_looking_stuck_and_leaves_its_record(
    store: JobStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    held, _ = await store.create("held")
    idle, _ = await store.create("idle")
    done, _ = await store.create("done")
    await store.fail(done.job_id, Stage.CHUNK, "bad pdf", 1)
    await asyncio.sleep(0.3)
    await store.touch([held.job_id, done.job_id])
    assert await store.stuck_jobs(0.25) == [idle.job_id]
    # Only the index moved: the record's last change is its own.
    assert (await store.get(held.job_id)).update_time == held.update_time
    # A finished job is not put back among the open ones.
    assert await redis_client.zscore(f"{namespace}:jobs:open", done.job_id) is None
    index = await redis_client.zrange(f"{namespace}:jobs:open", 0, -1, withscores=True)
    await store.touch([])  # nothing to touch: the index stays as it was
    assert await redis_client.zrange(f"{namespace}:jobs:open", 0, -1, withscores=True) == index


async def test_note_error_keeps_the_state(store: JobStore) -> None:
    job, _ = await store.create("doc")
    await store.set_total(job.job_id, 1)
    await store.note_error(job.job_id, Stage.INDEX, "milvus busy", 2)
    got = await store.get(job.job_id)
    assert got.state is JobState.ACTIVE
    assert (got.last_error, got.last_error_stage, got.attempts) == ("milvus busy", Stage.INDEX, 2)
    assert got.finish_time == 0.0


async def test_note_error_on_a_job_that_is_gone_leaves_no_partial_record(
    store: JobStore, redis_client: aioredis.Redis
) -> None:
    # A job that expired (or was never made) while its task was retrying.
    await store.note_error("gone-job", Stage.EMBED, "embedder busy", 2)

    assert await redis_client.exists(store.keys.job("gone-job")) == 0
    assert await store.get_many(["gone-job"]) == [None]


# -- watch -------------------------------------------------------------------------------------


async def test_watch_yields_now_then_each_change_and_stops_at_a_terminal_state(
    store: JobStore,
) -> None:
    job, _ = await store.create("doc")
    seen: asyncio.Queue[Job] = asyncio.Queue()

    async def watch() -> int:
        n = 0
        async for j in store.watch(job.job_id, poll_s=5.0):
            n += 1
            await seen.put(j)
        return n

    watcher = asyncio.create_task(watch())

    async def next_seen() -> Job:
        return await asyncio.wait_for(seen.get(), timeout=3)

    first = await next_seen()
    assert first.state is JobState.ACCEPTED
    assert first.job_id == job.job_id

    await store.set_total(job.job_id, 2)
    got = await next_seen()
    assert (got.state, got.progress.chunks_total) == (JobState.ACTIVE, 2)

    await store.mark_embedded(job.job_id, [0, 1])
    got = await next_seen()
    assert got.progress.chunks_embedded == 2

    await store.mark_indexed(job.job_id, [0, 1])
    got = await next_seen()
    assert got.progress.chunks_indexed == 2
    assert got.state is JobState.ACTIVE

    await store.move(job.job_id, JobState.COMPLETED)
    got = await next_seen()
    assert got.state is JobState.COMPLETED

    # The pub/sub wake-ups came well before the 5 s poll, and the watch ended by itself.
    assert await asyncio.wait_for(watcher, timeout=3) == 5
    assert seen.empty()


async def test_watch_of_a_finished_job_yields_it_once(store: JobStore) -> None:
    job, _ = await store.create("doc")
    await store.fail(job.job_id, Stage.CHUNK, "corrupt PDF", 1)
    got = [j async for j in store.watch(job.job_id)]
    assert [j.state for j in got] == [JobState.FAILED]


async def test_watch_of_an_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(NotFound):
        async for _ in store.watch("no-such-job"):
            pass


# -- document versions -------------------------------------------------------------------------


async def test_versions_only_move_forward_and_delete_voids_them(store: JobStore) -> None:
    j1, j2, j3 = [(await store.create("doc"))[0] for _ in range(3)]
    await store.create("other")

    versions, state = await versions_of(store).complete_version(j2.job_id, "default", "doc", 2)
    assert (versions.live, state) == (2, JobState.COMPLETED)
    versions, state = await versions_of(store).complete_version(j3.job_id, "default", "doc", 3)
    assert (versions.live, state) == (3, JobState.COMPLETED)
    # An older version finishing late cannot replace the newer live one.
    versions, state = await versions_of(store).complete_version(j1.job_id, "default", "doc", 1)
    assert (versions.seq, versions.live, versions.floor, state) == (3, 3, 0, JobState.COMPLETED)
    assert await versions_of(store).live_versions(
        "default", ["doc", "other", "unknown", "doc"]
    ) == {
        "doc": 3,
        "other": 0,
        "unknown": 0,
    }
    done = await store.get(j3.job_id)
    assert done.finish_time > 0

    assert await versions_of(store).delete_document("default", "doc") is True
    assert await versions_of(store).live_versions("default", ["doc"]) == {"doc": 0}
    after = await versions_of(store).document_versions("default", "doc")
    assert after is not None
    assert (after.seq, after.live, after.floor) == (3, 0, 3)
    assert await versions_of(store).delete_document("default", "doc") is False  # already deleted
    assert await versions_of(store).delete_document("default", "unknown") is False

    # A new ingest after the delete gets version 4, which can go live.
    j4, _ = await store.create("doc")
    assert j4.document_version == 4
    versions, state = await versions_of(store).complete_version(j4.job_id, "default", "doc", 4)
    assert (versions.live, state) == (4, JobState.COMPLETED)
    assert await versions_of(store).live_versions("default", ["doc"]) == {"doc": 4}
    assert await versions_of(store).delete_document("default", "doc") is True


async def test_a_version_finishing_after_its_document_was_deleted_never_goes_live(
    store: JobStore,
) -> None:
    j1, _ = await store.create("doc")
    j2, _ = await store.create("doc")
    await store.set_total(j2.job_id, 1)
    assert await versions_of(store).delete_document("default", "doc") is True
    for job, version in ((j1, 1), (j2, 2)):
        versions, state = await versions_of(store).complete_version(
            job.job_id, "default", "doc", version
        )
        assert (versions.live, versions.floor) == (0, 2)
        assert state is JobState.CANCELLED
        got = await store.get(job.job_id)
        assert got.state is JobState.CANCELLED
        assert "deleted" in got.last_error
    assert await versions_of(store).live_versions("default", ["doc"]) == {"doc": 0}


async def test_a_cancelled_job_never_goes_live(store: JobStore) -> None:
    job, _ = await store.create("doc")
    assert await store.move(job.job_id, JobState.CANCELLED)
    versions, state = await versions_of(store).complete_version(job.job_id, "default", "doc", 1)
    assert (versions.live, state) == (0, JobState.CANCELLED)
    assert await versions_of(store).live_versions("default", ["doc"]) == {"doc": 0}


async def test_the_version_switch_follows_the_state_machines_table(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failed job whose last chunk lands completes, as ALLOWED_FROM says; the script takes the
    # rule from that table, so a table without the move leaves the job failed.
    done, _ = await store.create("doc")
    await store.fail(done.job_id, Stage.EMBED, "one copy of a task crashed", 5)
    _, state = await versions_of(store).complete_version(
        done.job_id, "default", "doc", done.document_version
    )
    assert state is JobState.COMPLETED
    assert (await store.get(done.job_id)).state is JobState.COMPLETED
    stays, _ = await store.create("doc")
    await store.fail(stays.job_id, Stage.EMBED, "boom", 5)
    without = ALLOWED_FROM[JobState.COMPLETED] - {JobState.FAILED}
    monkeypatch.setitem(ALLOWED_FROM, JobState.COMPLETED, without)
    _, state = await versions_of(store).complete_version(
        stays.job_id, "default", "doc", stays.document_version
    )
    assert state is JobState.FAILED
    assert (await store.get(stays.job_id)).state is JobState.FAILED


async def test_complete_version_of_an_unknown_job_is_not_found(store: JobStore) -> None:
    await store.create("doc")
    with pytest.raises(NotFound):
        await versions_of(store).complete_version("no-such-job", "default", "doc", 1)


async def test_reopen_moves_a_failed_job_back_to_active(
    store: JobStore, redis_client: aioredis.Redis, namespace: str
) -> None:
    job, _ = await store.create("doc")
    await store.fail(job.job_id, Stage.EMBED, "boom", 5)
    assert await store.reopen(job.job_id)
    got = await store.get(job.job_id)
    assert got.state is JobState.ACTIVE
    assert got.finish_time == 0.0
    # A job at work again must not vanish on the expiry its failure set.
    assert await redis_client.ttl(f"{namespace}:job:{job.job_id}") == -1
    # Only a failed job reopens.
    await store.move(job.job_id, JobState.COMPLETED)
    assert not await store.reopen(job.job_id)
    assert (await store.get(job.job_id)).state is JobState.COMPLETED


# -- progress and the crash-loop counter -------------------------------------------------------


async def test_mark_many_counts_each_chunk_once_across_tasks_in_one_round_trip(
    store: JobStore,
) -> None:
    a, _ = await store.create("a")
    b, _ = await store.create("b")
    await store.set_total(a.job_id, 3)
    await store.set_total(b.job_id, 2)
    results = await store.mark_many(
        "indexed",
        [
            (a.job_id, [0, 1], 1),
            (b.job_id, [0, 1], 2),
            (a.job_id, [1, 2], 1),
            ("no-such-job", [0], 1),
        ],
    )
    assert results[3] is None
    assert [(r.count, r.total, r.all_done) for r in results[:3] if r] == [
        (2, 3, False),
        (2, 2, True),
        (3, 3, True),
    ]
    assert (await store.get(a.job_id)).progress.chunks_indexed == 3
    assert (await store.get(b.job_id)).attempts == 2


async def test_solo_runs_count_until_the_message_finishes(
    redis_client: aioredis.Redis, namespace: str
) -> None:
    runs = SoloRuns(redis_client, namespace=namespace)
    assert [await runs.start("m1") for _ in range(3)] == [1, 2, 3]
    assert await runs.start("m2") == 1  # each message counts on its own
    assert 0 < await redis_client.ttl(f"{namespace}:solo:m1") <= SOLO_RUN_TTL_S
    await runs.end("m1")
    assert await runs.start("m1") == 1
