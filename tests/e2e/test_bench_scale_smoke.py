"""`python -m bench --scale --quick` end to end: every service a process on the real Redis and
Milvus Lite, the stand-in for the model; the report's shape, sane figures and a clean Redis."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import redis

from bench.__main__ import main
from tests.conftest import REDIS_URL

STAGES = {"gateway", "chunker", "embedder", "indexer"}


@pytest.mark.e2e
def test_the_quick_scale_mode_measures_growing_work_and_backlogs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--scale", "--quick", "--out", str(tmp_path), "--redis-url", REDIS_URL]) == 0
    printed = capsys.readouterr().out
    figures = json.loads((tmp_path / "scale.json").read_text())
    assert not (tmp_path / "bench.json").exists()  # the scale mode alone ran
    scale = figures["scale"]
    assert scale["plan"]["sizes"] == [1, 4, 16] and scale["plan"]["backlogs"] == [0, 1000, 5000]
    assert "stand-in (not the model)" in scale["plan"]["embedder"]
    assert "embedder (stand-in, not the model)" in printed

    sizes = scale["work_growth"]
    chunks = figures["corpus"]["chunks"]
    assert [s["repeat"] for s in sizes] == [1, 4, 16] and chunks > 0
    for size in sizes:
        assert size["chunks_indexed"] == size["chunks_expected"] == size["repeat"] * chunks
        assert size["job_states"] == {"completed": size["repeat"] * figures["corpus"]["documents"]}
        assert size["seconds"] > 0 and size["seconds_per_1000_chunks"] > 0
        assert set(size["peak_rss_bytes"]) == STAGES and min(size["peak_rss_bytes"].values()) > 0
        assert set(size["cpu_seconds_per_1000_chunks"]) == STAGES
        assert size["stores"]["milvus_lite_bytes"] > 0
    # Each size started empty: what its keys and its Milvus file hold grows with its own work.
    for smaller, larger in itertools.pairwise(sizes):
        assert (
            larger["stores"]["redis"]["namespace_after"]["bytes"]
            > smaller["stores"]["redis"]["namespace_after"]["bytes"]
        )
        assert larger["stores"]["milvus_lite_bytes"] > smaller["stores"]["milvus_lite_bytes"]

    levels = scale["backlog"]["levels"]
    assert [b["backlog"] for b in levels] == [0, 1000, 5000]
    for level in levels:
        # The backlog, plus the warm-up's 64 calls: nothing took from the queue.
        assert level["waiting_at_start"] == level["backlog"] + scale["backlog"]["concurrency"]
        assert level["waiting_at_end"] == level["waiting_at_start"] + level["ingest"]["calls"]
        assert level["ingest"]["p99_ms"] > 0 and level["ingest"]["calls"] > 0
        assert level["ingest"]["errors"] == 0
        # 4 KiB of content a document, kept beside its job until a chunker takes it.
        assert 4096 < level["redis_bytes_per_waiting_document"] < 4 * 4096
    held = [b["redis_namespace"]["bytes"] for b in levels]
    assert held == sorted(held) and held[0] < held[-1]

    growth = scale["growth"]
    assert growth["work"]["work_ratio"] == 16.0
    assert growth["backlog"]["p99_ms"] == pytest.approx(
        levels[-1]["ingest"]["p99_ms"] / levels[0]["ingest"]["p99_ms"], abs=1e-3
    )
    assert "growth backlog 0 -> 5,000: Ingest p99" in printed

    # Every level's documents were deleted after it (the shared Redis keeps none of them).
    r = redis.Redis.from_url(REDIS_URL)
    try:
        assert not list(r.scan_iter(match="*:doc:scale-fill-*", count=1000))
        assert not list(r.scan_iter(match="*:doc:scale-load-*", count=1000))
    finally:
        r.close()
