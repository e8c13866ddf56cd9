"""`python -m bench --scale`: how cost grows with work. Runs only this, not the other measurements.

Work growth: the whole pipeline end to end (every service a process, Redis, Milvus Lite) on the
corpus 1, 4 and 16 times over, under distinct document ids. Each size runs on a fresh stack (its
own namespace, Milvus Lite file and collection), so sizes share no state: each shows what that
much work costs from empty. The embedder is the bench's stand-in, NOT THE MODEL, unless
`--scale-model` (the model runs ~18 chunks/s on 2 CPU cores: 16x would take ~25 minutes).

Backlog: the gateway alone under measurement 4's load (64 concurrent single-document Ingest
calls) with 0, 10,000 and 100,000 documents accepted and waiting in the chunk queue: a gateway
and namespace per backlog, the load taking turns among them. No chunker runs, so the backlog
stays; IngestBatch fills it; the queue-depth limit is raised out of reach.

Writes `scale.json` beside bench.json (a scale run leaves the last bench.json as it was).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from grpc import aio

from bench import pipeline, scale_report
from bench.corpus import Corpus
from bench.gateway_load import DOC_BYTES, ROUNDS, Run, drive, payload
from bench.redis_usage import namespace_bytes, used_memory
from bench.stack import Stack
from bench.standin_embedder import LABEL as STANDIN_LABEL
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import ingest_service_pb2_grpc as pb_grpc

SIZES = (1, 4, 16)
BACKLOGS = (0, 10_000, 100_000)
LOAD_SECONDS = 5.0
# --quick: a smoke run well under a minute (its corpus is --quick's too: 12 short pages).
QUICK_BACKLOGS = (0, 1_000, 5_000)
QUICK_LOAD_SECONDS = 1.5
FILL_DOCS_PER_CALL = 250  # 4 KiB documents: ~1 MB a call
FILL_CONCURRENCY = 4
WARMUP_S = 10.0


@dataclass(frozen=True)
class Plan:
    """What a scale run measures: corpus multiples, backlogs and the load at each."""

    sizes: tuple[int, ...]
    backlogs: tuple[int, ...]
    load_seconds: float
    concurrency: int
    model: bool  # the real model in the work-growth part, not the stand-in
    device: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        quick = bool(args.quick)
        return cls(
            sizes=SIZES if args.scale_sizes is None else args.scale_sizes,
            backlogs=(QUICK_BACKLOGS if quick else BACKLOGS)
            if args.scale_backlogs is None
            else args.scale_backlogs,
            load_seconds=(QUICK_LOAD_SECONDS if quick else LOAD_SECONDS)
            if args.scale_seconds is None
            else args.scale_seconds,
            concurrency=args.concurrency,
            model=args.scale_model,
            device=args.device,
        )

    @property
    def embedder(self) -> str:
        """What embeds in the work-growth part, as every report of it says."""
        return "the model" if self.model else f"{STANDIN_LABEL}: hash-seeded unit vectors"


def _counts(text: str) -> tuple[int, ...]:
    """`1,4,16` -> (1, 4, 16); an empty text is an empty list (that part is skipped)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of whole numbers (e.g. 1,4,16)"
        ) from exc
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: the numbers must be 0 or more")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scale mode's flags on `python -m bench`."""
    g = parser.add_argument_group("scale mode (--scale: how cost grows with work)")
    g.add_argument(
        "--scale",
        action="store_true",
        help="run only the scale mode: end-to-end time, peak RSS and CPU per 1,000 chunks at 1x, "
        "4x and 16x the corpus (stand-in embedder), and the gateway's Ingest p99 with 0, 10,000 "
        "and 100,000 documents waiting; writes scale.json (about 2.5 minutes here)",
    )
    g.add_argument(
        "--scale-model",
        action="store_true",
        help="the real model in the work-growth part instead of the stand-in (on 2 CPU cores 16x "
        "takes ~25 minutes; with a GPU add --device cuda)",
    )
    g.add_argument(
        "--scale-sizes",
        type=_counts,
        default=None,
        help="corpus multiples, e.g. 1,4,16 (the default); an empty list skips this part",
    )
    g.add_argument(
        "--scale-backlogs",
        type=_counts,
        default=None,
        help="documents waiting in the chunk queue (default 0,10000,100000; --quick 0,1000,5000); "
        "an empty list skips this part",
    )
    g.add_argument(
        "--scale-seconds",
        type=float,
        default=None,
        help=f"seconds of Ingest load at each backlog (default {LOAD_SECONDS:g}; --quick "
        f"{QUICK_LOAD_SECONDS:g})",
    )


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run(
    args: argparse.Namespace,
    corpus: Corpus,
    figures: dict[str, Any],
    redis_url: str,
    threads: int,
    out: Path,
) -> int:
    """The scale mode: both parts, the table, scale.json. Returns the exit status (0)."""
    plan = Plan.from_args(args)
    start = time.perf_counter()
    work = out / "work"
    scale: dict[str, Any] = {
        "plan": {**asdict(plan), "embedder": plan.embedder},
        "commit": _commit(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    figures["scale"] = scale
    if plan.sizes:
        scale["work_growth"] = work_growth(corpus, work, redis_url, threads, plan, args.chunkers)
    if plan.backlogs:
        scale["backlog"] = backlog(corpus, work, redis_url, plan)
    scale["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    scale["seconds"] = round(time.perf_counter() - start, 1)
    scale["growth"] = scale_report.growth(scale)
    print(scale_report.table(figures))
    path = out / "scale.json"
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return 0


def work_growth(
    corpus: Corpus, workdir: Path, redis_url: str, threads: int, plan: Plan, chunkers: int = 1
) -> list[dict[str, Any]]:
    """The whole pipeline at each corpus multiple, each on a fresh stack."""
    sizes: list[dict[str, Any]] = []
    for repeat in plan.sizes:
        chunks = repeat * len(corpus.chunks)
        _say(f"scale: end to end, corpus x{repeat} ({chunks} chunks), embedder: {plan.embedder}")
        figures = pipeline.end_to_end(
            corpus,
            workdir,
            redis_url,
            plan.device if plan.model else "cpu",
            threads,
            chunkers,
            metrics=False,
            standin=not plan.model,
            repeat=repeat,
            measure_stores=True,
        )
        indexed = figures["chunks_indexed"]
        figures["repeat"] = repeat
        figures["embedder"] = plan.embedder
        figures["seconds_per_1000_chunks"] = (
            round(1000 * figures["seconds"] / indexed, 4) if indexed else 0.0
        )
        sizes.append(figures)
        _say(
            f"   {figures['chunks_per_s']:.0f} chunks/s, {indexed}/{chunks} chunks indexed "
            f"({'the model' if plan.model else 'stand-in, not the model'})"
        )
    return sizes


def backlog(corpus: Corpus, workdir: Path, redis_url: str, plan: Plan) -> dict[str, Any]:
    """The gateway alone (no chunker: the backlog stays) at each backlog.

    Each backlog has a gateway and namespace of its own, all filled first; the load then takes
    turns among them in ROUNDS short stretches, as measurement 4's calls do, so that a slow
    spell of the shared machine does not land on one backlog and pass for its cost."""
    levels = sorted(plan.backlogs)
    # Out of reach: the backlog plus the load's own documents (a few thousand a second).
    limit = 10 * max(levels) + 1_000_000
    stacks = [Stack(workdir / f"backlog-{n}", redis_url, "cpu", 0) for n in levels]
    for stack in stacks:
        stack.env["RAGLINE_MAX_QUEUE_DEPTH"] = str(limit)
    try:
        for stack in stacks:
            stack.start("gateway")
        results = asyncio.run(
            _measure(
                stacks, redis_url, payload(corpus), levels, plan.load_seconds, plan.concurrency
            )
        )
    finally:
        for stack in stacks:
            # In batches first: one DEL of every key (stop_all's clean-up) would hold the
            # shared Redis for a while at 100,000 documents.
            deleted = pipeline._delete_namespace(redis_url, stack.namespace)
            stack.stop_all()
            _say(f"   cleaned up: {deleted:,} keys of namespace {stack.namespace} deleted")
    return {
        "concurrency": plan.concurrency,
        "doc_bytes": DOC_BYTES,
        "load_seconds": plan.load_seconds,
        "rounds": ROUNDS,
        "max_queue_depth": limit,
        "levels": results,
    }


async def _measure(
    stacks: list[Stack],
    redis_url: str,
    body: bytes,
    levels: list[int],
    seconds: float,
    concurrency: int,
) -> list[dict[str, Any]]:
    """Fills each gateway's chunk queue with its backlog, then measures Ingest on top of each."""
    r = aioredis.Redis.from_url(redis_url)
    queues = [f"{stack.namespace}:q:chunk" for stack in stacks]

    def request(doc_id: str) -> pb.IngestRequest:
        return pb.IngestRequest(document_id=doc_id, content=body, content_type="text/plain")

    channels = [aio.insecure_channel(stack.gateway) for stack in stacks]
    try:
        stubs = [pb_grpc.IngestServiceStub(channel) for channel in channels]
        ingests = [_ingest_call(stub, request) for stub in stubs]
        fills: list[dict[str, Any]] = []
        memory: list[int] = []
        for stub, stack, level, ingest in zip(stubs, stacks, levels, ingests, strict=True):
            _say(f"scale: backlog {level:,}: filling a chunk queue through IngestBatch")
            before = used_memory(redis_url)
            fills.append(await _fill(stub, request, level, stack))
            memory.append(used_memory(redis_url) - before)
            # Warm-up, as measurement 4's: connections, HTTP/2 windows, Redis scripts.
            await drive(ingest, calls=concurrency, duration_s=WARMUP_S, concurrency=concurrency)
        at_start = [int(await r.xlen(q)) for q in queues]
        _say(
            f"scale: {concurrency} concurrent Ingest on each backlog in turn, "
            f"{ROUNDS} x {seconds / ROUNDS:g} s each"
        )
        runs = [Run() for _ in levels]
        next_id = [concurrency] * len(levels)  # the warm-up took ids 0 to concurrency - 1
        for _ in range(ROUNDS):
            for i, ingest in enumerate(ingests):
                stretch = await drive(
                    ingest,
                    calls=10**9,
                    duration_s=seconds / ROUNDS,
                    concurrency=concurrency,
                    first=next_id[i],
                )
                next_id[i] += len(stretch.latencies) + len(stretch.errors)
                runs[i].add(stretch)
        at_end = [int(await r.xlen(q)) for q in queues]
    finally:
        for channel in channels:
            await channel.close(None)
        await r.aclose()
    results = []
    for i, (stack, level) in enumerate(zip(stacks, levels, strict=True)):
        own = namespace_bytes(redis_url, stack.namespace)
        summary = runs[i].summary()
        _say(
            f"   backlog {level:,}: Ingest {summary['calls_per_s']:.0f} calls/s, p99 "
            f"{summary['p99_ms']:.1f} ms, {summary['errors']} errors; its namespace holds "
            f"{own['bytes'] / 2**20:.0f} MiB"
        )
        results.append(
            {
                "backlog": level,
                "waiting_at_start": at_start[i],
                "waiting_at_end": at_end[i],
                "fill": fills[i],
                "ingest": summary,
                "gateway_rss_bytes": psutil.Process(stack.processes["gateway"].pid)
                .memory_info()
                .rss,
                "redis_used_memory_fill_delta_bytes": memory[i],
                "redis_namespace": own,
                "redis_bytes_per_waiting_document": own["bytes"] / at_end[i] if at_end[i] else 0.0,
            }
        )
    return results


def _ingest_call(
    stub: pb_grpc.IngestServiceAsyncStub, request: Callable[[str], pb.IngestRequest]
) -> Callable[[int], Awaitable[None]]:
    async def ingest(i: int) -> None:
        await stub.Ingest(request(f"scale-load-{i}"), timeout=30)

    return ingest


async def _fill(
    stub: pb_grpc.IngestServiceAsyncStub,
    request: Callable[[str], pb.IngestRequest],
    count: int,
    stack: Stack,
) -> dict[str, Any]:
    """Queues `count` documents through IngestBatch, FILL_DOCS_PER_CALL a call."""

    async def fill(i: int) -> None:
        start = i * FILL_DOCS_PER_CALL
        end = min(count, start + FILL_DOCS_PER_CALL)
        docs = [request(f"scale-fill-{n}") for n in range(start, end)]
        await stub.IngestBatch(pb.IngestBatchRequest(documents=docs), timeout=120)

    run = await drive(
        fill, calls=-(-count // FILL_DOCS_PER_CALL), duration_s=3600, concurrency=FILL_CONCURRENCY
    )
    if run.errors:
        raise RuntimeError(
            f"filling the chunk queue through IngestBatch failed ({run.errors[0]}); "
            f"the gateway's log is {stack.log_path('gateway')}"
        )
    return {
        "documents": count,
        "seconds": round(run.seconds, 3),
        "docs_per_s": count / run.seconds if count and run.seconds else 0.0,
    }


def _commit() -> str:
    """The checkout's commit (with `+changes` when the tree differs from it), or `unknown`."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def _git(*args: str) -> str:
    """What a git command prints in this checkout, stripped."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()
