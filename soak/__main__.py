"""`python -m soak` (`make soak`): the whole stack under chaos for a fixed time, then a check
that nothing accepted was lost, duplicated, mixed or left stuck.

On each broker in turn: two replicas of the gateway, chunker and embedder, one indexer (Milvus
Lite is one process's file), a private Redis with the append-only file on (fsync always).
Several clients ingest, re-ingest, delete and cancel documents of their own through either
gateway, retrying a refused call with the same request id; a searcher checks that no answer
mixes two versions of a document. Meanwhile a replica is killed (kill -9) or stopped (SIGTERM)
every 10-30 s and started again, as a supervisor would, and Redis (and RabbitMQ, on that broker)
restarts once. Every accepted operation goes in a ledger (soak/ledger.py), checked against the
end state once every job has ended.

Exits 1 when anything was lost, duplicated, mixed or stuck. Figures go to --out as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.gateway_load import percentile
from ragline_client import (
    DeadlineExceededError,
    FailedPreconditionError,
    NotFoundError,
    RaglineClient,
    RaglineClientError,
    ResourceExhaustedError,
    UnavailableError,
)
from soak.ledger import Cancel, Delete, DocumentView, Ingest, JobView, Ledger, mixes_versions
from tests.stack import PrivateRedis, Stack

T = TypeVar("T")

# Settings the soak's services share: failed consumers' messages come back within seconds.
SETTINGS = {
    "log_level": "WARNING",
    "visibility_timeout_s": "10",
    "retry_initial_delay_s": "0.5",
    "retry_max_delay_s": "5",
    "shutdown_grace_s": "10",
}
REPLICAS = {"gateway": 2, "chunker": 2, "embedder": 2}
RETRYABLE = (UnavailableError, DeadlineExceededError, ResourceExhaustedError)
TOPICS = ("harbours", "glaciers", "orchards", "comets", "looms", "tides", "ferns", "bridges")
STAGES = ("chunk", "embed", "index")
OPEN = ("accepted", "queued", "active")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20, help="chaos time per broker (20)")
    p.add_argument("--broker", choices=("redis", "rabbitmq", "both"), default="both")
    p.add_argument("--clients", type=int, default=4, help="client threads (4)")
    p.add_argument("--documents", type=int, default=12, help="documents each client owns (12)")
    p.add_argument("--drain-minutes", type=float, default=15, help="most time for jobs to end")
    p.add_argument("--seed", type=int, default=1, help="for the choice of faults and operations")
    p.add_argument("--out", type=Path, default=Path("ragline-data/soak"), help="logs and JSON")
    return p.parse_args(argv)


def document_text(document_id: str, nonce: str, rng: random.Random) -> str:
    topic = rng.choice(TOPICS)
    paragraphs = rng.randint(2, 5)
    return "\n\n".join(
        f"Document {document_id} revision {nonce}, part {i}, on {topic}. "
        + " ".join(f"Note {i}.{j} on {topic} in {document_id} is kept here." for j in range(6))
        for i in range(paragraphs)
    )


class Gateways:
    """Clients of every gateway: a call that meets a refused or dead gateway is retried on the
    next, with backoff, until `give_up_s`."""

    def __init__(self, addresses: list[str], give_up_s: float = 180.0) -> None:
        self._clients = [RaglineClient(a, timeout=30) for a in addresses]
        self._give_up_s = give_up_s
        self._next = 0

    def call(self, fn: Callable[[RaglineClient], T]) -> T:
        deadline = time.monotonic() + self._give_up_s
        delay = 0.2
        while True:
            client = self._clients[self._next % len(self._clients)]
            try:
                return fn(client)
            except RETRYABLE:
                if time.monotonic() > deadline:
                    raise
                self._next += 1
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        for client in self._clients:
            client.close()


class Tally:
    """Counts shared by the threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def error(self, text: str) -> None:
        with self._lock:
            self.counts["unexpected_errors"] += 1
            if len(self.errors) < 20:
                self.errors.append(text)


def run_client(
    index: int,
    gateways: Gateways,
    ledger: Ledger,
    tally: Tally,
    documents: int,
    stop: threading.Event,
    seed: int,
) -> None:
    """One client: its own documents, one operation at a time, each recorded once accepted."""
    rng = random.Random(seed * 1000 + index)
    ids = [f"soak-{index}-{k}" for k in range(documents)]
    last_job: dict[str, str] = {}
    while not stop.is_set():
        document_id = rng.choice(ids)
        roll = rng.random()
        try:
            if roll < 0.7 or document_id not in last_job:
                text = document_text(document_id, uuid.uuid4().hex[:8], rng)
                request_id = uuid.uuid4().hex
                started = time.monotonic()
                job = gateways.call(
                    lambda c, t=text, r=request_id, d=document_id: c.ingest(
                        t, document_id=d, chunk_size=48, request_id=r
                    )
                )
                ledger.record(
                    document_id,
                    Ingest(job.job_id, job.document_version, time.monotonic() - started),
                )
                last_job[document_id] = job.job_id
            elif roll < 0.85:
                # NOT_FOUND: nothing of it was live or in flight; deleted all the same.
                with contextlib.suppress(NotFoundError):
                    gateways.call(lambda c, d=document_id: c.delete(d))
                ledger.record(document_id, Delete())
            else:
                job_id = last_job[document_id]
                try:
                    gateways.call(lambda c, j=job_id: c.cancel(j))
                    ledger.record(document_id, Cancel(job_id, cancelled=True))
                except FailedPreconditionError:
                    ledger.record(document_id, Cancel(job_id, cancelled=False))
        except RETRYABLE as exc:
            tally.add("given_up")  # never answered OK: not in the ledger, but said
            tally.error(f"{document_id}: gave up after retries: {exc}")
        except RaglineClientError as exc:
            tally.error(f"{document_id}: {type(exc).__name__}: {exc}")
        stop.wait(rng.uniform(0.4, 1.2))


def run_searcher(
    gateways: Gateways, ledger: Ledger, tally: Tally, stop: threading.Event, seed: int
) -> None:
    """Searches all the time; counts answers that mix two versions of one document."""
    rng = random.Random(seed)
    while not stop.is_set():
        topic = rng.choice(TOPICS)
        try:
            hits = gateways.call(lambda c, t=topic: c.search(f"notes on {t}", top_k=50))
        except RaglineClientError as exc:
            tally.error(f"search: {type(exc).__name__}: {exc}")
            continue
        tally.add("searches")
        if mixes_versions([(h.document_id, h.document_version) for h in hits]):
            tally.add("mixed")
        stop.wait(0.2)


def run_chaos(
    stack: Stack,
    redis: PrivateRedis,
    broker: str,
    tally: Tally,
    stop: threading.Event,
    minutes: float,
    seed: int,
) -> None:
    """Kills or stops a random replica every 10-30 s, restarts Redis (and RabbitMQ) once, and
    starts again whatever has exited, as a supervisor would."""
    rng = random.Random(seed)
    start = time.monotonic()
    next_fault = start + rng.uniform(10, 30)
    redis_at = start + minutes * 60 / 3
    rabbit_at = start + minutes * 60 * 2 / 3 if broker == "rabbitmq" else float("inf")
    while not stop.wait(0.5):
        tally.add("restarts", len(stack.restart_dead()))
        now = time.monotonic()
        if now >= next_fault:
            victim = rng.choice(sorted(stack.processes))
            how = "kill_9" if rng.random() < 0.5 else "sigterm"
            stack.processes[victim].send_signal(
                signal.SIGKILL if how == "kill_9" else signal.SIGTERM
            )
            tally.add(how)
            print(f"  fault: {how} {victim}", flush=True)
            next_fault = now + rng.uniform(10, 30)
        if now >= redis_at:
            print("  fault: Redis killed and restarted from its append-only file", flush=True)
            redis.kill()
            time.sleep(2)
            redis.start()
            tally.add("redis_restarts")
            redis_at = float("inf")
        if now >= rabbit_at:
            print("  fault: RabbitMQ stopped and started", flush=True)
            rabbitmqctl("stop_app")
            time.sleep(3)
            rabbitmqctl("start_app")
            tally.add("rabbitmq_restarts")
            rabbit_at = float("inf")


def rabbitmqctl(command: str) -> None:
    subprocess.run(["rabbitmqctl", command], check=True, capture_output=True, timeout=120)


def drain(gateways: Gateways, job_ids: list[str], minutes: float) -> dict[str, JobView | None]:
    """Waits until every job has ended (or `minutes` pass), showing progress; the final views."""
    deadline = time.monotonic() + minutes * 60
    shown = 0.0
    while True:
        views = {j: job_view(gateways, j) for j in job_ids}
        open_jobs = [j for j, v in views.items() if v is not None and v.state in OPEN]
        now = time.monotonic()
        if not open_jobs or now > deadline:
            return views
        if now - shown > 10:
            print(
                f"  draining: {len(job_ids) - len(open_jobs)}/{len(job_ids)} jobs ended", flush=True
            )
            shown = now
        time.sleep(2)


def job_view(gateways: Gateways, job_id: str) -> JobView | None:
    try:
        job = gateways.call(lambda c: c.get_job(job_id))
    except NotFoundError:
        return None
    return JobView(str(job.state), job.progress.chunks_total, job.last_error)


def document_view(gateways: Gateways, document_id: str) -> DocumentView | None:
    try:
        info = gateways.call(lambda c: c.get_document(document_id))
    except NotFoundError:
        info = None
    hits = gateways.call(
        lambda c: c.search(f"notes in {document_id}", top_k=1000, document_ids=[document_id])
    )
    if info is None and not hits:
        return None
    return DocumentView(
        info.live_version if info is not None else 0,
        [(h.document_version, h.chunk_index) for h in hits],
    )


def soak_one(broker: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = args.out / broker
    shutil.rmtree(workdir, ignore_errors=True)
    redis = PrivateRedis(workdir / "redis")
    redis.start()
    stack = Stack(workdir / "stack", redis.url, broker=broker, **SETTINGS)
    stack.workdir.mkdir(parents=True, exist_ok=True)
    ledger, tally, stop = Ledger(), Tally(), threading.Event()
    try:
        print(f"soak on {broker}: starting the stack", flush=True)
        stack.start()
        for stage, count in REPLICAS.items():
            stack.add_replicas(stage, count)
        addresses = [stack.addresses[n] for n in stack.processes if n.startswith("gateway")]
        gateways = [Gateways(addresses) for _ in range(args.clients + 2)]
        threads = [
            threading.Thread(
                target=run_client,
                args=(i, gateways[i], ledger, tally, args.documents, stop, args.seed),
            )
            for i in range(args.clients)
        ]
        threads.append(
            threading.Thread(
                target=run_searcher, args=(gateways[-2], ledger, tally, stop, args.seed)
            )
        )
        chaos = threading.Thread(
            target=run_chaos, args=(stack, redis, broker, tally, stop, args.minutes, args.seed)
        )
        print(f"soak on {broker}: {args.minutes:g} minutes of chaos", flush=True)
        started = time.monotonic()
        for t in [*threads, chaos]:
            t.start()
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(min(30, args.minutes * 60 - (time.monotonic() - started)))
            print(
                f"  {time.monotonic() - started:.0f} s: {sum(ledger.counts().values())} "
                f"operations, faults {tally.counts['kill_9'] + tally.counts['sigterm']}",
                flush=True,
            )
        stop.set()
        for t in [*threads, chaos]:
            t.join()
        stack.restart_dead()
        stack.wait_serving(list(stack.processes), 180)
        print(f"soak on {broker}: waiting for every job to end", flush=True)
        final = gateways[-1]
        jobs = drain(final, ledger.job_ids(), args.drain_minutes)
        dead = {
            d.job_id: f"{d.error_type}: {d.error_message}"
            for stage in STAGES
            for d in final.call(lambda c, s=stage: list(c.iter_dead_letters(s)))
        }
        documents = {d: document_view(final, d) for d in ledger.events}
        verdict = ledger.verify(jobs, dead, documents)
        for g in gateways:
            g.close()
    finally:
        stop.set()
        stack.stop_all()
        if redis.process is not None:
            redis.kill()
    latencies = ledger.ingest_latencies()
    c = tally.counts
    return {
        "broker": broker,
        "minutes": args.minutes,
        "operations": dict(ledger.counts()),
        "searches": c["searches"],
        "faults": {
            "kill_9": c["kill_9"],
            "sigterm": c["sigterm"],
            "redis_restarts": c["redis_restarts"],
            "rabbitmq_restarts": c["rabbitmq_restarts"],
        },
        "restarts": c["restarts"],
        "jobs": verdict.jobs,
        "documents": verdict.documents,
        "lost": verdict.lost,
        "duplicated": verdict.duplicated,
        "mixed": c["mixed"],
        "stuck": verdict.stuck,
        "wrong_version": verdict.wrong_version,
        "resurrected": verdict.resurrected,
        "given_up": c["given_up"],
        "unexpected_errors": c["unexpected_errors"],
        "ingest_latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 1),
            "p99": round(percentile(latencies, 99) * 1000, 1),
            "max": round(max(latencies, default=0.0) * 1000, 1),
        },
        "problems": verdict.problems[:50],
        "errors": tally.errors,
    }


def clean(figures: dict[str, Any]) -> bool:
    keys = ("lost", "duplicated", "mixed", "stuck", "wrong_version", "resurrected")
    return not any(figures[k] for k in keys) and not figures["unexpected_errors"]


def report(figures: dict[str, Any]) -> str:
    f = figures
    ops = ", ".join(f"{v} {k}s" for k, v in sorted(f["operations"].items()))
    faults = f["faults"]
    lines = [
        f"{f['broker']}: {f['minutes']:g} minutes, {ops}, {f['searches']} searches",
        f"  faults: {faults['kill_9']} kill -9, {faults['sigterm']} SIGTERM, "
        f"{faults['redis_restarts']} Redis restart(s), {faults['rabbitmq_restarts']} RabbitMQ "
        f"restart(s); {f['restarts']} replica restarts",
        f"  lost {f['lost']}, duplicated {f['duplicated']}, mixed {f['mixed']}, stuck "
        f"{f['stuck']}, wrong version {f['wrong_version']}, resurrected {f['resurrected']}",
        f"  Ingest latency during faults: p50 {f['ingest_latency_ms']['p50']} ms, p99 "
        f"{f['ingest_latency_ms']['p99']} ms, max {f['ingest_latency_ms']['max']} ms; "
        f"{f['given_up']} calls given up, {f['unexpected_errors']} unexpected errors",
        f"  verdict: {'CLEAN' if clean(f) else 'FAILED'}",
    ]
    lines += [f"    {p}" for p in f["problems"][:10]]
    lines += [f"    error: {e}" for e in f["errors"][:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    brokers = ["redis", "rabbitmq"] if args.broker == "both" else [args.broker]
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    results = [soak_one(b, args) for b in brokers]
    out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": cpu, "runs": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(out, indent=2))
    print()
    print(f"soak on {cpu}, {time.strftime('%Y-%m-%d')}")
    for r in results:
        print(report(r))
    print(f"figures: {args.out / 'soak.json'}")
    return 0 if all(clean(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
