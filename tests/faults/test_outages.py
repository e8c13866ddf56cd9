"""Redis restarts, SIGTERM under load, and a Redis configured to evict."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ragline_client import RaglineClient
from tests.faults.conftest import (
    assert_every_chunk_indexed_once,
    ingest_load,
    long_text,
    progress_total,
    wait_until,
)
from tests.stack import PrivateRedis, free_port

pytestmark = [pytest.mark.faults, pytest.mark.timeout(400)]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    if server.process is not None:
        server.kill()


def test_a_redis_restart_mid_run_loses_no_accepted_document(make_stack, private_redis) -> None:
    stack = make_stack(redis_url=private_redis.url)
    stack.start()
    with RaglineClient(stack.gateway, timeout=60) as client:
        ids = ingest_load(client, "mills", 20, 4)
        wait_until(
            lambda: progress_total(client, ids, "chunks_indexed") > 5, 120, "indexing to start"
        )
        private_redis.kill()  # kill -9: only what the append-only file holds survives
        time.sleep(2)
        private_redis.start()
        assert_every_chunk_indexed_once(client, ids, stack)
        # Every service rode out the outage without a restart.
        assert all(p.poll() is None for p in stack.processes.values())


@pytest.mark.parametrize("stage", ["chunker", "embedder", "indexer", "gateway"])
def test_sigterm_under_load_drains_and_exits_within_the_grace(make_stack, stage: str) -> None:
    stack = make_stack(shutdown_grace_s="15")
    stack.start()
    with RaglineClient(stack.gateway, timeout=60) as client:
        ids = ingest_load(client, "ports", 12, 5)
        wait_until(
            lambda: progress_total(client, ids, "chunks_embedded") > 5, 120, "work under way"
        )
        started = time.monotonic()
        code = stack.stop(stage, timeout_s=30)
        assert code == 0, stack.tail(stage)
        assert time.monotonic() - started < 15 + 5
        assert "stopped" in stack.tail(stage)
        stack.start(stage)
        assert_every_chunk_indexed_once(client, ids, stack)


def test_sigterm_mid_cut_exits_within_the_grace_and_the_next_chunker_cuts_it(make_stack) -> None:
    """Work that outlasts the grace period (here a cut stalled for a minute) is abandoned, not
    waited for: the chunker exits on time and the next chunker gets the document."""
    stack = make_stack(shutdown_grace_s="1", faults="chunk:stall:GLACIAL:60")
    stack.start("gateway", "chunker")
    with RaglineClient(stack.gateway, timeout=60) as client:
        job = client.ingest(long_text("GLACIAL", 20), document_id="slow", content_type="text/plain")
        wait_until(lambda: "injected stall" in stack.tail("chunker"), 60, "the stalled cut")
        started = time.monotonic()
        code = stack.stop("chunker", timeout_s=30)
        assert code == 0, stack.tail("chunker")
        assert time.monotonic() - started < 1 + 5
        assert client.get_job(job.job_id).progress.chunks_total == 0  # the cut never finished
        assert "exiting without waiting" in stack.tail("chunker")
        del stack.env["RAGLINE_FAULTS"]
        stack.start("chunker")
        wait_until(
            lambda: client.get_job(job.job_id).progress.chunks_total > 0, 120, "the second cut"
        )


def test_services_refuse_to_start_on_a_redis_that_evicts(tmp_path: Path) -> None:
    server = PrivateRedis(
        tmp_path / "evicting", "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"
    )
    server.start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ragline.cli.main",
                "serve",
                "chunker",
                "--listen",
                f"127.0.0.1:{free_port()}",
            ],
            env={
                **__import__("os").environ,
                "RAGLINE_REDIS_URL": server.url,
                "RAGLINE_NAMESPACE": f"test-{uuid.uuid4().hex[:8]}",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.kill()
    assert result.returncode == 2
    assert "allkeys-lru" in result.stderr
    assert "noeviction" in result.stderr


def test_services_warn_when_redis_runs_without_the_append_only_file(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "volatile")
    server.start()
    redis.Redis(port=server.port).config_set("appendonly", "no")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ragline.cli.main",
            "serve",
            "chunker",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env={
            **__import__("os").environ,
            "RAGLINE_REDIS_URL": server.url,
            "RAGLINE_NAMESPACE": f"test-{uuid.uuid4().hex[:8]}",
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        from tests.stack import serving

        wait_until(lambda: serving(f"127.0.0.1:{port}"), 60, "the chunker to serve")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        server.kill()
    assert process.returncode == 0
    assert "appendonly no" in err


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def amqp_port_open() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.exclusive
@pytest.mark.parametrize("broker", ["rabbitmq"])
def test_a_rabbitmq_outage_mid_run_is_ridden_out_without_restarts(make_stack) -> None:
    stack = make_stack()
    stack.start()
    with RaglineClient(stack.gateway, timeout=60) as client:
        ids = ingest_load(client, "kilns", 16, 4)
        wait_until(
            lambda: progress_total(client, ids, "chunks_embedded") > 5, 120, "work under way"
        )
        rabbitmqctl("stop_app")
        try:
            time.sleep(3)
        finally:
            rabbitmqctl("start_app")
        wait_until(amqp_port_open, 60, "RabbitMQ to listen again")
        assert_every_chunk_indexed_once(client, ids, stack)
        assert all(p.poll() is None for p in stack.processes.values()), "a service had to restart"
