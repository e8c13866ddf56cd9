"""The benchmark's pure helpers on tiny inputs (batching, padding, percentiles, the report), and
measurement 6's stand-in for the model: end to end on a tiny corpus, and out of ragline's reach."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ragline
from bench import corpus, matmul_speed, pipeline, report
from bench.__main__ import parse_args
from bench.gateway_load import Run, drive, percentile
from bench.model_baselines import hand_batches, padding_efficiency
from bench.stack import ProcessSampler
from bench.stack import Stack as BenchStack
from bench.standin_embedder import StandInEncoder
from ragline.config import Settings
from ragline.embedder.batching import plan_batches
from ragline.model_info import resolve_model
from tests.conftest import REDIS_URL


@pytest.mark.unit
def test_padding_efficiency() -> None:
    lengths = [4, 2, 2, 1]
    assert padding_efficiency(lengths, [[0, 1], [2, 3]]) == pytest.approx(9 / 12)
    assert padding_efficiency(lengths, list(plan_batches(lengths, 4))) == 1.0
    assert list(plan_batches(lengths, 8)) == [[0], [1, 2], [3]]
    assert list(hand_batches(5, 2)) == [[0, 1], [2, 3], [4]]


@pytest.mark.unit
def test_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) == 0.0


@pytest.mark.unit
def test_runs_in_turns_add_up_to_one_measurement() -> None:
    # Two stretches of the same call: rates come from all calls over the summed time, and the
    # percentiles from every latency, not an average of each stretch's.
    first = Run(latencies=[0.001] * 99, seconds=1.0)
    second = Run(latencies=[0.5], errors=["Timeout"], seconds=3.0)
    first.add(second)
    summary = first.summary(docs_per_call=4)
    assert summary["calls"] == 100 and summary["errors"] == 1
    assert summary["calls_per_s"] == 25.0 and summary["docs_per_s"] == 100.0
    assert summary["p50_ms"] == 1.0 and summary["p99_ms"] == 1.0
    assert Run(latencies=[0.001] * 98 + [0.5] * 2, seconds=1.0).summary()["p99_ms"] == 500.0


@pytest.mark.unit
def test_drive_numbers_calls_from_first_and_stops_at_the_count() -> None:
    seen: list[int] = []

    async def call(i: int) -> None:
        seen.append(i)
        if i == 12:
            raise RuntimeError("boom")

    run = asyncio.run(drive(call, calls=5, duration_s=10, concurrency=3, first=10))
    assert sorted(seen) == [10, 11, 12, 13, 14]
    assert len(run.latencies) == 4 and run.errors == ["RuntimeError: boom"]


@pytest.mark.unit
def test_report_targets_and_table() -> None:
    figures = {
        "machine": {
            "device": "cpu",
            "cpu_model": "x",
            "cores": 2,
            "torch": "2",
            "torch_threads": 2,
        },
        "corpus": {
            "documents": 1,
            "bytes": 10,
            "chunks": 2,
            "chunk_size": 254,
            "chunk_overlap": 32,
            "tokens_mean": 3.0,
            "tokens_median": 3,
            "tokens_min": 2,
            "tokens_max": 4,
        },
        "hand_loop": {"chunks_per_s": 10.0, "seconds": 1.0, "padding_efficiency": 0.7},
        "embedder_path": {
            "chunks_per_s": 20.0,
            "seconds": 1.0,
            "dtype": "float32",
            "batches": 1,
            "max_batch_tokens": 16384,
            "padding_efficiency": 0.9,
        },
        "end_to_end": {
            "chunks_per_s": 19.0,
            "seconds": 1.0,
            "chunks_indexed": 2,
            "chunks_expected": 2,
            "job_states": {"completed": 1},
            "peak_rss_bytes": {"embedder": 2**30},
            "cpu_seconds": {"embedder": 1.0},
        },
    }
    verdicts = {t.name: t.passed for t in report.targets(figures)}
    assert verdicts == {
        "end-to-end / embedder path (3/2)": True,
        "end-to-end / hand loop (3/1)": False,
        "padding efficiency (embedder)": True,
        "embedder peak RSS": True,
    }
    text = report.table(figures)
    assert "MISS" in text and "PASS" in text
    assert [line.split()[0] for line in text.splitlines() if "skipped" in line] == ["6"]
    assert "matrix products" not in text  # not measured: no line about it

    figures["machine"]["matmul"] = {
        "fp32_gflops": 150.0,
        "bf16_gflops": 400.0,
        "bf16_speedup": 2.67,
    }
    text = report.table(figures)
    assert "fp32 150 GFLOP/s, bf16 400 GFLOP/s (2.67x)" in text
    figures["machine"]["matmul"] = {
        "fp32_gflops": 110.0,
        "bf16_gflops": 15.2,
        "bf16_speedup": 0.138,
    }
    assert "fp32 110 GFLOP/s, bf16 15.2 GFLOP/s (0.138x)" in report.table(figures)
    figures["machine"]["matmul"] = {
        "fp32_gflops": 150.0,
        "bf16_gflops": 400.0,
        "bf16_speedup": 2.67,
    }
    assert "speed of matrix products" not in text  # the embedder ran in fp32, as the loop did

    figures["embedder_path"]["dtype"] = "bfloat16"
    text = report.table(figures)
    assert "speed of matrix products: 2.67x on this machine" in text


@pytest.mark.unit
@pytest.mark.cpu_paths
def test_matmul_speed_measures_both_precisions() -> None:
    # bf16 runs ~0.1x of fp32 where it is emulated (AVX2 only) and up to ~4x with AMX: the
    # ratio of the reported figures must match the reported speed-up at either end.
    speed = matmul_speed.measure("cpu", scale=16)
    assert speed["fp32_gflops"] > 0 and speed["bf16_gflops"] > 0
    # Each figure has 3 significant digits (at most 0.5% off), so their ratio is within ~1.5%.
    assert speed["bf16_speedup"] == pytest.approx(
        speed["bf16_gflops"] / speed["fp32_gflops"], rel=0.02
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "shown"), [(0.027349, 0.0273), (0.14, 0.14), (2.5149, 2.51), (394.27, 394.0)]
)
def test_figures_keep_three_significant_digits_from_001x_to_10x(value: float, shown: float) -> None:
    assert matmul_speed.significant(value) == shown


@pytest.mark.unit
def test_quick_shrinks_sizes_but_keeps_explicit_flags() -> None:
    args = parse_args(["--quick", "--modules", "5"])
    assert args.modules == 5 and args.max_doc_kib == 3 and args.gateway_calls == 300


@pytest.mark.unit
def test_a_model_measured_before_and_after_end_to_end_counts_as_their_mean() -> None:
    before = {"chunks_per_s": 40.0, "seconds": 10.0, "dtype": "bfloat16", "padding_efficiency": 0.9}
    after = {"chunks_per_s": 30.0, "seconds": 14.0, "dtype": "bfloat16", "padding_efficiency": 0.9}
    both = report.bracket(before, after)
    assert both["chunks_per_s"] == 35.0 and both["seconds"] == 12.0
    assert both["runs_chunks_per_s"] == [40.0, 30.0] and both["dtype"] == "bfloat16"
    assert before["chunks_per_s"] == 40.0  # the first run's record is left as it was
    figures = {"hand_loop": {"chunks_per_s": 10.0}, "embedder_path": both}
    figures["end_to_end"] = {"chunks_per_s": 31.5, "peak_rss_bytes": {}}
    (ratio_3_2,) = [t for t in report.targets(figures) if "(3/2)" in t.name]
    assert ratio_3_2.value == pytest.approx(0.9) and ratio_3_2.passed


@pytest.mark.unit
def test_metrics_on_and_off_in_one_run_report_the_overhead() -> None:
    assert parse_args([]).metrics == "both"
    assert parse_args(["--metrics", "off"]).metrics == "off"
    on = {"chunks_per_s": 98.5, "peak_rss_bytes": {}}
    figures = {"end_to_end": on, "end_to_end_metrics_off": {"chunks_per_s": 100.0}}
    (overhead,) = [t for t in report.targets(figures) if "metrics overhead" in t.name]
    assert overhead.value == pytest.approx(100 * (100.0 / 98.5 - 1)) and overhead.passed
    figures["end_to_end"] = {"chunks_per_s": 97.0, "peak_rss_bytes": {}}
    (overhead,) = [t for t in report.targets(figures) if "metrics overhead" in t.name]
    assert not overhead.passed  # 3.1% slower with metrics on
    assert not [t for t in report.targets({"end_to_end": on}) if "metrics" in t.name]


@pytest.mark.unit
def test_the_sampler_finds_children_started_after_it_and_keeps_the_trees_peak() -> None:
    # The child starts after the sampler's first look at the tree and holds 150 MiB for a while.
    child = "import time; b = b'x' * (150 * 2**20); time.sleep(5)"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; time.sleep(0.5); "
            f"subprocess.run([sys.executable, '-c', {child!r}])",
        ]
    )
    try:
        sampler = ProcessSampler({"svc": parent.pid}, interval_s=0.05, tree_every_s=0.2)
        with sampler:
            deadline = time.monotonic() + 20
            while sampler.peak_rss["svc"] < 150 * 2**20 and time.monotonic() < deadline:
                time.sleep(0.1)
        assert sampler.peak_rss["svc"] >= 150 * 2**20
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.unit
def test_the_stand_in_gives_each_text_its_own_unit_vector_every_time() -> None:
    info = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    standin = StandInEncoder(info)
    texts = ["alpha", "beta", "alpha", "é \ud800 surrogate"]
    vectors = standin.encode(texts)
    assert vectors.shape == (4, info.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # Deterministic (a redelivered chunk gets the same vector) and distinct per text.
    assert np.array_equal(vectors[0], vectors[2])
    assert np.array_equal(standin.encode(["beta"])[0], vectors[1])
    assert abs(float(vectors[0] @ vectors[1])) < 0.5
    assert "stand-in" in standin.device and "stand-in" in standin.precision


@pytest.mark.unit
def test_the_stand_in_is_out_of_the_ragline_packages_reach() -> None:
    # Nothing in the package names it or imports the bench, and no setting mentions it: only
    # bench/standin_embedder.py's own entry point builds one.
    assert importlib.util.find_spec("ragline.embedder.standin_embedder") is None
    assert importlib.util.find_spec("ragline.standin_embedder") is None
    package = Path(ragline.__file__).parent
    sources = {p: p.read_text() for p in package.rglob("*.py")}
    assert len(sources) > 50
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n.split(".")[0] in ("bench", "tests")], path
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert not [f for f in fields if "stand" in f or "fake" in f]
    assert StandInEncoder.__module__ == "bench.standin_embedder"


@pytest.mark.unit
def test_the_ceiling_is_labelled_a_stand_in_and_judged_against_the_h200_rate() -> None:
    assert not parse_args([]).skip_ceiling and parse_args(["--skip-ceiling"]).skip_ceiling
    assert parse_args(["--quick"]).ceiling_repeat < parse_args([]).ceiling_repeat
    ceiling = {
        "chunks_per_s": 1600.0,
        "seconds": 10.0,
        "chunks_indexed": 16000,
        "chunks_expected": 16000,
        "job_states": {"completed": 1600},
        "peak_rss_bytes": {"indexer": 2**28, "embedder": 2**28},
        "cpu_seconds": {"indexer": 8.0, "embedder": 1.6},
        "cpu_seconds_per_1000_chunks": {"indexer": 0.5, "embedder": 0.1},
    }
    figures = {
        "machine": {"device": "cpu", "cpu_model": "x", "cores": 2, "torch": "2"},
        "corpus": {
            "documents": 1,
            "bytes": 10,
            "chunks": 2,
            "chunk_size": 254,
            "chunk_overlap": 32,
            "tokens_mean": 3.0,
            "tokens_median": 3,
            "tokens_min": 2,
            "tokens_max": 4,
        },
        report.CEILING_KEY: ceiling,
    }
    figures["machine"]["torch_threads"] = 2
    assert "stand" in report.CEILING_KEY
    (target,) = report.targets(figures)
    assert "stand-in" in target.name and target.limit == 1500 and target.passed
    text = report.table(figures)
    assert "6 ceiling, STAND-IN model" in text and "embedder (stand-in)" in text
    assert "next bottleneck: indexer, 0.50 CPU s per 1,000 chunks" in text
    ceiling["chunks_per_s"] = 1499.0
    assert not report.targets(figures)[0].passed


@pytest.mark.e2e
def test_the_ceiling_runs_the_whole_pipeline_with_the_stand_in(tmp_path: Path) -> None:
    # Every service its own process, the real Redis and Milvus Lite, the stand-in for the model.
    tiny = corpus.build(3, 1500)
    figures = pipeline.end_to_end(
        tiny, tmp_path, REDIS_URL, "cpu", 1, metrics=False, standin=True, repeat=2
    )
    assert figures["chunks_indexed"] == figures["chunks_expected"] == 2 * len(tiny.chunks) > 0
    assert figures["job_states"] == {"completed": 2 * len(tiny.documents)}
    per_1000 = figures["cpu_seconds_per_1000_chunks"]
    assert set(per_1000) == {"gateway", "chunker", "embedder", "indexer"}


@pytest.mark.unit
def test_only_the_bench_flag_puts_the_stand_in_in_the_stack(tmp_path: Path) -> None:
    real = BenchStack(tmp_path, REDIS_URL, "cpu", 1)
    assert real.command("embedder")[-2:] == ["serve", "embedder"]
    standin = BenchStack(tmp_path, REDIS_URL, "cpu", 1, standin=True)
    assert standin.command("embedder")[-2:] == ["-m", "bench.standin_embedder"]
    assert standin.command("indexer")[-2:] == ["serve", "indexer"]
