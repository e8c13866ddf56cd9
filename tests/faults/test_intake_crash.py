"""A gateway killed between recording a job and publishing its chunk task: the client's retry with
the same request id gets that job, which completes, once."""

from __future__ import annotations

import pytest
import redis

from ragline_client import RaglineClient, UnavailableError
from tests.conftest import REDIS_URL
from tests.faults.conftest import assert_every_chunk_indexed_once, long_text

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


def job_keys(namespace: str) -> list[bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:job:*", count=1000))
    finally:
        client.close()
    return [k for k in keys if k.count(b":") == 2]  # not the progress bitmaps


def test_a_gateway_killed_after_the_commit_leaves_no_stuck_job(make_stack, broker: str) -> None:
    # A short lease, so the restarted gateway's relay takes over the dead one's outbox entry soon.
    stack = make_stack(faults="gateway:crash_after_commit:KESTREL", outbox_lease_s="1")
    stack.start()
    text = long_text("KESTREL", 3)
    with RaglineClient(stack.gateway, timeout=30) as client:
        with pytest.raises(UnavailableError):
            client.ingest(text, document_id="kestrel", request_id="req-kestrel")
        assert stack.processes["gateway"].wait(10) == 70, stack.tail("gateway")
        assert "injected crash after the commit" in stack.tail("gateway")

        assert stack.restart_dead() == ["gateway"]
        stack.wait_serving(["gateway"], 60)
        # The retry answers with the job the dead gateway made (a seen request makes no job,
        # so the fault does not fire again).
        job = client.ingest(text, document_id="kestrel", request_id="req-kestrel")
        assert len(job_keys(stack.namespace)) == 1

        (done,) = assert_every_chunk_indexed_once(client, [job.job_id], stack)
        assert done.document_version == 1
        assert done.progress.chunks_total > 1
        assert len(job_keys(stack.namespace)) == 1
    if broker == "rabbitmq":
        # The dead gateway never published: the restarted one's relay did, after the lease.
        assert "from the outbox whose writer did not publish them" in stack.tail("gateway")
