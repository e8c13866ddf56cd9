"""Measurement 4: the gateway alone (no workers) under 64 concurrent calls, beside a bare
grpc.aio echo server and raw redis-py XADD of the same payload."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from grpc import aio

from bench.corpus import Corpus
from bench.echo_server import METHOD
from bench.pipeline import _delete_namespace
from bench.stack import Stack, free_port
from ragline_client.v1 import ingest_service_pb2 as pb
from ragline_client.v1 import ingest_service_pb2_grpc as pb_grpc

DOC_BYTES = 4096
ROUNDS = 5


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def payload(corpus: Corpus, size: int = DOC_BYTES) -> bytes:
    """`size` bytes of ASCII corpus text."""
    text = " ".join(d.text for d in corpus.documents).encode("ascii", "ignore") or b"x"
    return (text * (size // len(text) + 1))[:size]


@dataclass
class Run:
    """What one stretch of calls gave: latencies of those that finished, errors, wall time."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, other: Run) -> None:
        self.latencies.extend(other.latencies)
        self.errors.extend(other.errors)
        self.seconds += other.seconds

    def summary(self, docs_per_call: int = 1) -> dict[str, Any]:
        """Rates over the summed wall time, latency percentiles over every call."""
        ok, seconds = len(self.latencies), self.seconds
        return {
            "calls": ok,
            "errors": len(self.errors),
            "first_error": self.errors[0] if self.errors else "",
            "seconds": round(seconds, 3),
            "calls_per_s": ok / seconds if seconds else 0.0,
            "docs_per_s": ok * docs_per_call / seconds if seconds else 0.0,
            "docs_per_call": docs_per_call,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p99_ms": percentile(self.latencies, 99) * 1000,
        }


async def drive(
    call: Callable[[int], Awaitable[Any]],
    *,
    calls: int,
    duration_s: float,
    concurrency: int,
    first: int = 0,
) -> Run:
    """Runs `call(i)` for i = first, first + 1, ... from `concurrency` workers until `calls`
    calls or `duration_s` seconds."""
    run = Run()
    counter = 0
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal counter
        while counter < calls and time.perf_counter() < deadline:
            i = first + counter
            counter += 1
            t = time.perf_counter()
            try:
                await call(i)
            except Exception as exc:  # counted and reported, never fatal
                run.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            run.latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - start
    return run


async def _load(
    gateway: str,
    echo: str,
    redis_url: str,
    namespace: str,
    body: bytes,
    calls: int,
    duration_s: float,
    concurrency: int,
    batch_docs: int,
) -> dict[str, Any]:
    def request(doc_id: str) -> pb.IngestRequest:
        return pb.IngestRequest(document_id=doc_id, content=body, content_type="text/plain")

    results: dict[str, Any] = {}
    async with aio.insecure_channel(gateway) as gw, aio.insecure_channel(echo) as ec:
        await asyncio.wait_for(ec.channel_ready(), timeout=30)
        stub = pb_grpc.IngestServiceStub(gw)

        async def ingest(i: int, tag: str = "m") -> None:
            await stub.Ingest(request(f"gw-{tag}-{i}"), timeout=30)

        async def ingest_batch(i: int, tag: str = "m") -> None:
            docs = [request(f"gwb-{tag}-{i}-{j}") for j in range(batch_docs)]
            await stub.IngestBatch(pb.IngestBatchRequest(documents=docs), timeout=30)

        echo_call = ec.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        echo_body = request("gw-echo").SerializeToString()

        async def echo_once(i: int) -> None:
            await echo_call(echo_body, timeout=30)

        r = aioredis.Redis.from_url(redis_url, max_connections=concurrency + 8)
        stream = f"{namespace}:bench-xadd"

        async def xadd(i: int) -> None:
            await r.xadd(stream, {"b": body})

        try:
            plan: list[tuple[str, Callable[[int], Awaitable[Any]], int, int]] = [
                ("echo", echo_once, calls, 1),
                ("xadd", xadd, calls, 1),
                ("ingest", ingest, calls, 1),
                ("ingest_batch", ingest_batch, max(1, calls // batch_docs), batch_docs),
            ]
            for _, call, _, _ in plan:  # warm-up: connections, HTTP/2 windows, Redis scripts
                await drive(call, calls=concurrency, duration_s=10, concurrency=concurrency)
            # The four take turns in ROUNDS short stretches rather than one long one each: a
            # shared machine's speed drifts by tens of percent within minutes, which would
            # otherwise land on whichever ran during a slow spell and skew the ratios.
            runs = {name: Run() for name, _, _, _ in plan}
            for turn in range(ROUNDS):
                for name, call, n, _ in plan:
                    share = n // ROUNDS + (turn < n % ROUNDS)
                    runs[name].add(
                        await drive(
                            call,
                            calls=share,
                            duration_s=duration_s / ROUNDS,
                            concurrency=concurrency,
                            first=turn * n,
                        )
                    )
            for name, _, _, per_call in plan:
                results[name] = runs[name].summary(per_call)
        finally:
            await r.aclose()
    return results


def gateway_alone(
    corpus: Corpus,
    workdir: Path,
    redis_url: str,
    *,
    calls: int,
    duration_s: float,
    concurrency: int = 64,
    batch_docs: int = 32,
) -> dict[str, Any]:
    """The gateway with no worker running, an echo server, and XADD, under the same load."""
    stack = Stack(workdir, redis_url, "cpu", 0)
    echo_address = f"127.0.0.1:{free_port()}"
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.echo_server", echo_address.rsplit(":", 1)[1]],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        stack.start("gateway")
        results = asyncio.run(
            _load(
                stack.gateway,
                echo_address,
                redis_url,
                stack.namespace,
                payload(corpus),
                calls,
                duration_s,
                concurrency,
                batch_docs,
            )
        )
        results["concurrency"] = concurrency
        results["doc_bytes"] = DOC_BYTES
        return results
    finally:
        echo.terminate()
        echo.wait(10)
        stack.stop_all()
        _delete_namespace(redis_url, stack.namespace)
