"""kill -9 a stage in the middle of a run, start it again: every chunk lands exactly once."""

from __future__ import annotations

import pytest

from ragline_client import RaglineClient
from tests.faults.conftest import (
    assert_every_chunk_indexed_once,
    ingest_load,
    progress_total,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(400)]


@pytest.mark.parametrize("victim", ["chunker", "embedder", "indexer"])
def test_kill_9_mid_run_loses_and_duplicates_nothing(make_stack, victim: str) -> None:
    # Reads of 4 tasks (~128 chunks) make progress move in steps: with the default 64, the
    # embedder's gathering window can take the whole run (~36 tasks) in one read, leaving no
    # "mid-way" to kill it in.
    stack = make_stack(read_batch_size="4")
    stack.start()
    with RaglineClient(stack.gateway, timeout=60) as client:
        ids = ingest_load(client, f"crash-{victim}", 12, 6)
        # Kill the victim while it is demonstrably mid-way through the run.
        counter, least = {
            "chunker": ("chunks_total", 1),
            "embedder": ("chunks_embedded", 10),
            "indexer": ("chunks_indexed", 10),
        }[victim]
        wait_until(
            lambda: progress_total(client, ids, counter) >= least, 120, f"the {victim} to start"
        )
        before = progress_total(client, ids, counter)
        stack.kill(victim)
        stack.start(victim)

        finished = assert_every_chunk_indexed_once(client, ids, stack)
        total = sum(j.progress.chunks_total for j in finished)
        assert total >= 200, f"the run must be large enough to be interrupted ({total} chunks)"
        if victim != "chunker":
            assert before < total, "the victim was killed after the work, not during it"
