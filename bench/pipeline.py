"""Measurement 3: the whole pipeline as separate processes, from the first Ingest to the last
job completed; and the chunker's peak RSS on one large document."""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from pathlib import Path
from typing import Any

import redis

from bench.corpus import CHUNK_OVERLAP, CHUNK_SIZE, Corpus
from bench.redis_usage import RedisUsage, namespace_bytes
from bench.stack import ProcessSampler, Scraper, Stack
from ragline_client import Document, Job, RaglineClient

INGEST_BATCH = 50  # documents per IngestBatch call
POLL_S = 0.2


def _documents(corpus: Corpus, repeat: int = 1) -> list[Document]:
    """The corpus as documents, `repeat` times over under distinct ids (copy 2 on: "-copy-N")."""
    return [
        Document(
            content=d.text,
            document_id=d.document_id if copy == 1 else f"{d.document_id}-copy-{copy}",
            content_type="text/plain",
            chunk_size=CHUNK_SIZE,
            chunk_overlap=CHUNK_OVERLAP,
        )
        for copy in range(1, repeat + 1)
        for d in corpus.documents
    ]


def _wait_all(client: RaglineClient, job_ids: list[str], timeout_s: float) -> list[Job]:
    """Polls the jobs one at a time, in order, until each is terminal (few RPCs: the CPU is
    the model's). Returns the last seen state of every job; stops at `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    done: list[Job] = []
    for job_id in job_ids:
        job = client.get_job(job_id)
        while not job.state.is_terminal and time.monotonic() < deadline:
            time.sleep(POLL_S)
            job = client.get_job(job_id)
        done.append(job)
    return done


def end_to_end(
    corpus: Corpus,
    workdir: Path,
    redis_url: str,
    device: str,
    threads: int,
    chunkers: int = 1,
    metrics: bool = True,
    standin: bool = False,
    repeat: int = 1,
    measure_stores: bool = False,
) -> dict[str, Any]:
    """Ingest every corpus document through a fresh stack; chunks/s and per-service RSS/CPU.

    `chunkers` > 1 scales the chunker out to that many processes (on a GPU the model is cheap
    and cutting text becomes the limit). `metrics`: every service serves /metrics, scraped
    every second during the run (see Scraper); off, none serves them. `standin`: the embedder
    runs the bench's stand-in for the model (measurement 6, the pipeline's own ceiling), not
    the model. `repeat`: the corpus goes in that many times, under distinct document ids.
    `measure_stores`: also what the run cost the stores (under "stores"): Redis's memory and CPU
    over the run (see RedisUsage), the bytes the run's keys hold once every job is done, and the
    Milvus Lite file's size once the indexer has stopped."""
    stack = Stack(workdir, redis_url, device, threads, metrics=metrics, standin=standin)
    milvus = Path(stack.env["RAGLINE_MILVUS_URI"])
    try:
        stack.start()
        stack.add_replicas("chunker", chunkers)
        with ProcessSampler(stack.pids()) as sampler, RaglineClient(stack.gateway) as client:
            # One small document first: model warm-up and Milvus collection creation.
            warm = client.ingest("Warm-up text for the benchmark.", document_id="bench-warmup")
            client.wait(warm.job_id, timeout=120)
            sampler.mark_cpu()
            scraper = Scraper(stack) if metrics else None
            usage = RedisUsage(redis_url) if measure_stores else None
            with scraper or contextlib.nullcontext(), usage or contextlib.nullcontext():
                figures = _run(client, corpus, repeat)
            scrapes = scraper.scrapes if scraper else 0
            cpu = sampler.cpu_seconds()
        if usage:
            stores = {"redis": usage.figures()}
            stores["redis"]["namespace_after"] = namespace_bytes(redis_url, stack.namespace)
            figures["stores"] = stores
        indexed = figures["chunks_indexed"]
        result = {
            **figures,
            "chunkers": chunkers,
            "metrics": metrics,
            "scrapes": scrapes,
            "peak_rss_bytes": sampler.peak_rss,
            "cpu_seconds": cpu,
            # What each service costs per unit of work: steady on a busy machine, where the
            # wall-clock rate is not (the CPU is shared).
            "cpu_seconds_per_1000_chunks": {
                stage: round(1000 * seconds / indexed, 3) if indexed else 0.0
                for stage, seconds in cpu.items()
            },
        }
    finally:
        stack.stop_all()
        _delete_namespace(redis_url, stack.namespace)
        milvus_bytes = _disk_bytes(milvus)
        if milvus.is_dir():
            shutil.rmtree(milvus, ignore_errors=True)
        milvus.unlink(missing_ok=True)
    if "stores" in result:
        result["stores"]["milvus_lite_bytes"] = milvus_bytes
    return result


def _disk_bytes(path: Path) -> int:
    """The size of a file, or of every file under a folder; 0 if there is none."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _run(client: RaglineClient, corpus: Corpus, repeat: int = 1) -> dict[str, Any]:
    """Measurement 3 (or 6) proper: every document ingested, and every job waited for."""
    docs = _documents(corpus, repeat)
    start_wall = time.time()
    start = time.perf_counter()
    job_ids: list[str] = []
    for i in range(0, len(docs), INGEST_BATCH):
        job_ids += [j.job_id for j in client.ingest_batch(docs[i : i + INGEST_BATCH])]
    accepted_s = time.perf_counter() - start
    expected = len(corpus.chunks) * repeat
    jobs = _wait_all(client, job_ids, timeout_s=120 + expected / 2)
    observed_s = time.perf_counter() - start
    finish = [j.finish_time.timestamp() for j in jobs if j.finish_time is not None]
    # The gateway stamps finish times; polling only adds lag to the observed time.
    seconds = (max(finish) - start_wall) if len(finish) == len(jobs) else observed_s
    indexed = sum(j.progress.chunks_indexed for j in jobs)
    states: dict[str, int] = {}
    for j in jobs:
        states[j.state.value] = states.get(j.state.value, 0) + 1
    return {
        "documents": len(jobs),
        "job_states": states,
        "chunks_indexed": indexed,
        "chunks_expected": expected,
        "seconds": round(seconds, 3),
        "observed_seconds": round(observed_s, 3),
        "accept_seconds": round(accepted_s, 3),
        "chunks_per_s": indexed / seconds if seconds > 0 else 0.0,
        "errors": sorted({j.last_error for j in jobs if j.last_error})[:5],
    }


def chunker_big_document(
    corpus: Corpus, workdir: Path, redis_url: str, megabytes: float
) -> dict[str, Any]:
    """The chunker's peak RSS cutting one `megabytes` text document (gateway + chunker only).

    Stops once the chunker has queued every embed task; no embedder runs.
    """
    text = "\n\n".join(d.text for d in corpus.documents) or "text "
    size = int(megabytes * 1_000_000)
    content = (text * (size // len(text) + 1))[:size].encode("utf-8", "ignore")
    stack = Stack(workdir, redis_url, "cpu", 0)
    chunks_per_task = int(stack.env.get("RAGLINE_CHUNKS_PER_EMBED_TASK", "32"))
    r = redis.Redis.from_url(redis_url)
    try:
        stack.start("gateway", "chunker")
        with ProcessSampler(stack.pids()) as sampler, RaglineClient(stack.gateway) as client:
            start = time.perf_counter()
            job = client.ingest(content, document_id="bench-big", content_type="text/plain")
            deadline = time.monotonic() + 600
            total = 0
            while time.monotonic() < deadline:
                job = client.get_job(job.job_id)
                total = job.progress.chunks_total
                if job.state.is_terminal and job.state.value != "completed":
                    break
                queued = r.xlen(f"{stack.namespace}:q:embed") if total else 0
                if total and queued >= math.ceil(total / chunks_per_task):
                    break
                time.sleep(POLL_S)
            seconds = time.perf_counter() - start
        return {
            "document_bytes": len(content),
            "chunks": total,
            "seconds": round(seconds, 2),
            "state": job.state.value,
            "peak_rss_bytes": sampler.peak_rss,
        }
    finally:
        stack.stop_all()
        _delete_namespace(redis_url, stack.namespace)
        r.close()


def _delete_namespace(redis_url: str, namespace: str) -> int:
    """Deletes every `{namespace}:*` key; returns how many."""
    r = redis.Redis.from_url(redis_url)
    try:
        keys = list(r.scan_iter(match=f"{namespace}:*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])
        return len(keys)
    finally:
        r.close()
