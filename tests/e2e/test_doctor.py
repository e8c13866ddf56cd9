"""Stuck jobs, end to end: GetJob flags them, and `ragline doctor` says why, on either broker."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ragline_client import JobState, RaglineClient
from tests.conftest import REDIS_URL
from tests.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

STUCK_AFTER_S = 1.0


@pytest.fixture(params=["redis", "rabbitmq"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, REDIS_URL, broker=request.param, stuck_after_s=str(STUCK_AFTER_S))
    yield s
    s.stop_all()


def doctor(stack: Stack, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragline.cli.main", "doctor", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=stack.env,
    )


def drop_queued_chunk_tasks(stack: Stack) -> None:
    """Loses every waiting chunk task, as a broker that lost its data would."""
    if stack.env["RAGLINE_BROKER"] == "redis":
        redis.Redis.from_url(REDIS_URL).delete(f"{stack.namespace}:q:chunk")
    else:
        subprocess.run(
            ["rabbitmqctl", "purge_queue", f"{stack.namespace}.q.chunk"],
            check=True,
            capture_output=True,
            timeout=60,
        )


def wait_stuck(client: RaglineClient, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while not client.get_job(job_id).stuck:
        assert time.monotonic() < deadline, "the job never counted as stuck"
        time.sleep(0.2)


def test_doctor_names_a_stage_nobody_reads_then_repairs_a_lost_task(stack: Stack) -> None:
    stack.start("gateway")
    with RaglineClient(stack.gateway, timeout=30) as client:
        waiting = client.ingest("Nobody chunks this yet.", document_id="waiting")
        assert not waiting.stuck
        wait_stuck(client, waiting.job_id)
        run = doctor(stack)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "1 stuck job(s)" in run.stdout
        assert waiting.job_id in run.stdout
        assert "no chunker is reading the chunk queue" in run.stdout, run.stdout
        assert "ragline serve chunker" in run.stdout

        drop_queued_chunk_tasks(stack)  # its task is lost before any chunker comes
        # A gateway whose own repair loop waits an hour, so that the doctor finds the task
        # missing and repairs it itself (tests/e2e/test_repair.py has the gateways repair).
        stack.stop("gateway")
        stack.launch("gateway", "gateway", {**stack.env, "RAGLINE_STUCK_AFTER_S": "3600"})
        stack.start("indexer", "embedder", "chunker")
        stack.wait_serving(["gateway"], 120)
        fine = client.wait(
            client.ingest("This one goes through.", document_id="fine").job_id, timeout=120
        )
        assert fine.state == JobState.COMPLETED and not fine.stuck
        run = doctor(stack)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "1 stuck job(s)" in run.stdout and waiting.job_id in run.stdout
        assert "its chunk task is missing" in run.stdout, run.stdout
        assert "doctor --repair" in run.stdout
        assert client.get_job(waiting.job_id).state == JobState.ACCEPTED

        run = doctor(stack, "--repair")
        assert run.returncode == 1, run.stdout + run.stderr
        assert "repair:   published its chunk task again (repair 1 of at most 3)" in run.stdout
        repaired = client.wait(waiting.job_id, timeout=120)
        assert repaired.state == JobState.COMPLETED, repaired.last_error
        hits = client.search("chunks this", top_k=10, document_ids=["waiting"])
        assert [h.chunk_index for h in hits] == [0]
        run = doctor(stack)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "no stuck jobs" in run.stdout
