"""Measurement 4: the gateway alone (no workers) under 64 concurrent calls, beside a bare
grpc.aio echo server and raw redis-py XADD of the same payload."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from grpc import aio

from bench.corpus import Corpus
from bench.echo_server import METHOD
from bench.pipeline import _delete_namespace
from bench.stack import Stack, free_port
from ragline.v1 import ingest_service_pb2 as pb
from ragline.v1 import ingest_service_pb2_grpc as pb_grpc

DOC_BYTES = 4096


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


async def drive(
    call: Callable[[int], Awaitable[Any]],
    *,
    calls: int,
    duration_s: float,
    concurrency: int,
    docs_per_call: int = 1,
) -> dict[str, Any]:
    """Runs `call(i)` for i = 0, 1, ... from `concurrency` workers until `calls` calls or
    `duration_s` seconds; rates and latency percentiles of the calls that finished."""
    latencies: list[float] = []
    errors: list[str] = []
    counter = 0
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal counter
        while counter < calls and time.perf_counter() < deadline:
            i = counter
            counter += 1
            t = time.perf_counter()
            try:
                await call(i)
            except Exception as exc:  # counted and reported, never fatal
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    ok = len(latencies)
    return {
        "calls": ok,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "seconds": round(seconds, 3),
        "calls_per_s": ok / seconds if seconds else 0.0,
        "docs_per_s": ok * docs_per_call / seconds if seconds else 0.0,
        "docs_per_call": docs_per_call,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


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
            for name, call, n, per_call in plan:
                # Warm-up: connections, HTTP/2 windows, Redis scripts.
                await drive(call, calls=concurrency, duration_s=10, concurrency=concurrency)
                results[name] = await drive(
                    call,
                    calls=n,
                    duration_s=duration_s,
                    concurrency=concurrency,
                    docs_per_call=per_call,
                )
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
