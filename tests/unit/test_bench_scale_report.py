"""The bench's scale mode without I/O: its flags, what --quick shrinks, the growth ratios and the
table (see tests/e2e/test_bench_scale_smoke.py for a real run)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import scale, scale_report
from bench.__main__ import parse_args

STAGES = ("chunker", "embedder", "gateway", "indexer")


def _size(repeat: int, seconds: float, cpu: float, rss: int, keys_bytes: int) -> dict[str, Any]:
    chunks = 1000 * repeat
    return {
        "repeat": repeat,
        "embedder": scale.Plan.from_args(parse_args(["--scale"])).embedder,
        "chunks_indexed": chunks,
        "chunks_expected": chunks,
        "job_states": {"completed": 10 * repeat},
        "seconds": seconds,
        "chunks_per_s": chunks / seconds,
        "seconds_per_1000_chunks": 1000 * seconds / chunks,
        "cpu_seconds_per_1000_chunks": dict.fromkeys(STAGES, cpu),
        "peak_rss_bytes": dict.fromkeys(STAGES, rss),
        "stores": {
            "redis": {
                "used_memory_peak_delta_bytes": keys_bytes * 2,
                "server_cpu_seconds": 0.1 * repeat,
                "namespace_after": {"keys": 10 * repeat, "bytes": keys_bytes},
            },
            "milvus_lite_bytes": keys_bytes * 3,
        },
    }


def _level(backlog: int, p99_ms: float, calls_per_s: float) -> dict[str, Any]:
    return {
        "backlog": backlog,
        "waiting_at_start": backlog + 64,
        "waiting_at_end": backlog + 64 + 5000,
        "fill": {"documents": backlog, "seconds": 1.0, "docs_per_s": float(backlog)},
        "ingest": {
            "calls": 5000,
            "errors": 0,
            "calls_per_s": calls_per_s,
            "p50_ms": p99_ms / 2,
            "p99_ms": p99_ms,
        },
        "gateway_rss_bytes": 90 * 2**20,
        "redis_used_memory_fill_delta_bytes": 6500 * (backlog + 5064),
        "redis_namespace": {"keys": 3 * (backlog + 5064), "bytes": 6500 * (backlog + 5064)},
        "redis_bytes_per_waiting_document": 6500.0,
    }


@pytest.mark.unit
def test_quick_shrinks_the_backlogs_and_the_load_but_explicit_flags_win() -> None:
    full = scale.Plan.from_args(parse_args(["--scale"]))
    assert full.sizes == (1, 4, 16) and full.backlogs == (0, 10_000, 100_000)
    assert not full.model and "stand-in (not the model)" in full.embedder
    quick = scale.Plan.from_args(parse_args(["--scale", "--quick"]))
    assert quick.backlogs == (0, 1_000, 5_000) and quick.load_seconds < full.load_seconds
    assert parse_args(["--quick"]).modules < parse_args([]).modules  # and its corpus is smaller
    mine = scale.Plan.from_args(
        parse_args(["--scale", "--quick", "--scale-backlogs", "0,20", "--scale-sizes", ""])
    )
    assert mine.backlogs == (0, 20) and mine.sizes == ()
    model = scale.Plan.from_args(parse_args(["--scale", "--scale-model", "--device", "cuda"]))
    assert model.model and model.embedder == "the model" and model.device == "cuda"


@pytest.mark.unit
def test_a_list_that_is_not_numbers_is_refused_with_an_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--scale", "--scale-sizes", "1,four"])
    assert "comma-separated list of whole numbers (e.g. 1,4,16)" in capsys.readouterr().err


@pytest.mark.unit
def test_growth_divides_the_largest_by_the_smallest() -> None:
    figures: dict[str, Any] = {
        "work_growth": [
            _size(1, seconds=2.0, cpu=1.0, rss=100, keys_bytes=1000),
            _size(16, seconds=40.0, cpu=1.5, rss=150, keys_bytes=16000),
        ],
        "backlog": {"levels": [_level(0, 80.0, 1000.0), _level(100_000, 120.0, 900.0)]},
    }
    g = scale_report.growth(figures)
    work = g["work"]
    assert work["work_ratio"] == 16.0 and work["from_repeat"] == 1 and work["to_repeat"] == 16
    # 2 s per 1,000 chunks at x1, 2.5 at x16: 1.25x, grows faster than the work.
    assert work["seconds_per_1000_chunks"] == 1.25
    assert work["cpu_seconds_per_1000_chunks"] == dict.fromkeys(STAGES, 1.5)
    assert work["peak_rss_bytes"] == dict.fromkeys(STAGES, 1.5)
    assert work["redis_namespace_bytes_after"] == 16.0 and work["milvus_lite_bytes"] == 16.0
    assert work["redis_cpu_seconds_per_1000_chunks"] == 1.0
    assert g["backlog"] == {
        "from_backlog": 0,
        "to_backlog": 100_000,
        "p99_ms": 1.5,
        "p50_ms": 1.5,
        "calls_per_s": 0.9,
    }
    assert scale_report.growth({"work_growth": figures["work_growth"][:1]}) == {}


@pytest.mark.unit
def test_the_table_labels_the_stand_in_and_shows_each_size_and_backlog() -> None:
    sizes = [_size(r, seconds=r * 1.0, cpu=1.0, rss=2**20, keys_bytes=r * 2**20) for r in (1, 4)]
    levels = [_level(0, 80.0, 1000.0), _level(10_000, 88.0, 990.0)]
    figures: dict[str, Any] = {
        "machine": {"cpu_model": "AMD EPYC", "cores": 2, "time": "2026-12-01T10:00:00"},
        "corpus": {"documents": 10, "chunks": 1000},
        "scale": {
            "plan": {"device": "cpu", "model": False, "embedder": sizes[0]["embedder"]},
            "commit": "abc1234",
            "load_average_start": [1.0, 1.0, 1.0],
            "load_average_end": [1.5, 1.0, 1.0],
            "work_growth": sizes,
            "backlog": {
                "concurrency": 64,
                "doc_bytes": 4096,
                "load_seconds": 5.0,
                "rounds": 5,
                "levels": levels,
            },
        },
    }
    figures["scale"]["growth"] = scale_report.growth(figures["scale"])
    text = scale_report.table(figures)
    assert "commit abc1234" in text and "cpu=AMD EPYC (2 cores)" in text
    assert "embedder (stand-in, not the model)" in text
    assert "stand-in (not the model): hash-seeded unit vectors" in text
    (p99,) = [line for line in text.splitlines() if "Ingest p99 ms" in line]
    assert p99.split()[-3:] == ["80.0", "88.0", "1.10"]
    (keys,) = [line for line in text.splitlines() if "the run's keys" in line]
    assert keys.split()[-3:] == ["1.0", "4.0", "4.00"]
    assert "growth x1 -> x4 (work x4" in text
