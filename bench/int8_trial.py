"""`python -m bench.int8_trial` (or `make bench-int8`): int8 inference against the embedder's
fp32 path, for speed and retrieval quality.

The reference is the embedder's own fp32 path (`Encoder`, precision fp32: the fused dense
layers, mean pooling, normalization). Each candidate (bench.int8_backends) embeds the same
texts with the same tokenizer, batching, pooling and thread count. Per candidate it reports
chunks/s against torch fp32 on the same chunks (timed fp32, candidate, fp32, back to back, so
drift of the shared machine shows in both), the cosine of every vector to fp32's, how many of
each held-out query's top-10 chunks are the ones fp32 finds, and nDCG@10 / recall@10 on the
retrieval set (bench.int8_evalset) beside fp32's. The gate for shipping an int8 precision:
agreement >= 0.98, nDCG@10 within 1 point of fp32, and >= 1.5x fp32 chunks/s.

Results go to a JSON file and are merged with those of earlier runs on the same texts, so the
candidates can be run a few at a time (`--candidates`); the fp32 vectors and built models are
cached in `--work`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import int8_evalset, retrieval_metrics
from bench.int8_backends import CANDIDATES, CPU_BATCH_TOKENS, Context, ModelRunner, progress

GATE = {"agreement_min": 0.98, "ndcg_points_max_drop": 1.0, "speedup_min": 1.5}
K = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.int8_trial", description=__doc__)
    p.add_argument("--modules", type=int, default=160, help="stdlib modules in the retrieval set")
    p.add_argument(
        "--calibration-modules", type=int, default=40, help="further modules for calibration"
    )
    p.add_argument("--max-doc-kib", type=float, default=4, help="cut each pydoc page (KiB)")
    p.add_argument("--calibration-samples", type=int, default=200, help="texts to calibrate on")
    p.add_argument("--speed-chunks", type=int, default=256, help="chunks in each speed timing")
    p.add_argument("--threads", type=int, default=2, help="threads for every runtime")
    p.add_argument(
        "--candidates",
        default="all",
        help=f"comma-separated, or all: {', '.join(c.name for c in CANDIDATES)}",
    )
    p.add_argument("--work", type=Path, default=Path(".bench/int8"), help="cache folder")
    p.add_argument("--out", type=Path, default=Path(".bench/int8-trial.json"), help="JSON out")
    p.add_argument("--report-only", action="store_true", help="print the table from --out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        print(table(json.loads(args.out.read_text())))
        return 0
    wanted = _pick(args.candidates)
    if argv is None and os.environ.get("PYTHONHASHSEED") != "0":
        # pydoc prints sets in hash order, which the seed changes: a fixed seed gives the same
        # pages, hence the same texts, in every run, so results of several runs can be merged.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "bench.int8_trial", *sys.argv[1:]])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ragline.config import DEFAULT_MODEL
    from ragline.embedder.encoder import Encoder
    from ragline.model_info import resolve_model

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    progress(
        f"building the retrieval set ({args.modules} modules, calibration from the next "
        f"{args.calibration_modules})"
    )
    evalset = int8_evalset.build(
        args.modules, args.calibration_modules, int(args.max_doc_kib * 1024)
    )
    fingerprint = evalset.fingerprint()
    progress(f"{evalset.stats()} (texts {fingerprint})")
    info = resolve_model(DEFAULT_MODEL)
    fp32 = Encoder(info, device="cpu", threads=args.threads, precision="fp32")
    report = _load(args.out, fingerprint)
    ref_chunks, ref_queries = _reference(fp32, evalset, args.work / f"fp32-{fingerprint}.npz")
    relevant = evalset.relevant
    ref_rank = retrieval_metrics.top_k(ref_chunks, ref_queries, K)
    ref_chunk_rank = _chunk_neighbours(ref_chunks, ref_chunks)
    report["fp32"] = {
        "ndcg_at_10": retrieval_metrics.ndcg_at_k(ref_rank, relevant, K),
        "recall_at_10": retrieval_metrics.recall_at_k(ref_rank, relevant, K),
    }
    speed_texts = _spread(evalset.chunks, args.speed_chunks)
    ctx = Context(info, evalset.calibration, args.work, args.threads, args.calibration_samples)
    for candidate in wanted:
        progress(f"{candidate.name}: building")
        start = time.perf_counter()
        runner = ModelRunner(info, candidate.build(ctx))
        build_s = time.perf_counter() - start
        progress(
            f"{candidate.name}: embedding {len(evalset.chunks)} chunks and "
            f"{len(evalset.queries)} queries"
        )
        chunks = runner.encode(evalset.chunks)
        queries = runner.encode(evalset.queries)
        rank = retrieval_metrics.top_k(chunks, queries, K)
        progress(f"{candidate.name}: timing {len(speed_texts)} chunks against torch fp32")
        speed = _speed(fp32, runner, speed_texts)
        result: dict[str, Any] = {
            "description": candidate.description,
            "int8": candidate.int8,
            "build_seconds": round(build_s, 1),
            **speed,
            **retrieval_metrics.summary(ref_chunks, chunks),
            "query_cosine_min": float(retrieval_metrics.cosines(ref_queries, queries).min()),
            "agreement_at_10": retrieval_metrics.neighbour_agreement(ref_rank, rank),
            "chunk_agreement_at_10": retrieval_metrics.neighbour_agreement(
                ref_chunk_rank, _chunk_neighbours(chunks, chunks)
            ),
            "ndcg_at_10": retrieval_metrics.ndcg_at_k(rank, relevant, K),
            "recall_at_10": retrieval_metrics.recall_at_k(rank, relevant, K),
        }
        result["ndcg_points_vs_fp32"] = 100 * (result["ndcg_at_10"] - report["fp32"]["ndcg_at_10"])
        result["gate"] = _gate(result)
        result["measured"] = _when()
        report["candidates"][candidate.name] = result
        progress(
            f"{candidate.name}: {result['speedup']:.2f}x, cosine mean {result['cosine_mean']:.4f}"
            f" min {result['cosine_min']:.4f}, agreement {result['agreement_at_10']:.3f}, "
            f"nDCG@10 {result['ndcg_points_vs_fp32']:+.2f} points: {result['gate']['verdict']}"
        )
        _save(args, report, evalset, fingerprint, speed_texts, [], load_before)
    _save(args, report, evalset, fingerprint, speed_texts, wanted, load_before)
    print(table(report))
    progress(f"wrote {args.out}")
    return 0


def _save(
    args: argparse.Namespace,
    report: dict[str, Any],
    evalset: int8_evalset.EvalSet,
    fingerprint: str,
    speed_texts: list[str],
    finished: list[Any],
    load_before: tuple[float, float, float],
) -> None:
    """Writes the report so far; with `finished`, records this run and its load average."""
    if finished:
        report["runs"].append(
            {
                **_when(),
                "candidates": [c.name for c in finished],
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
        )
    report.update(
        {
            "texts": fingerprint,
            "evalset": evalset.stats(),
            "settings": {
                "max_doc_kib": args.max_doc_kib,
                "calibration_samples": args.calibration_samples,
                "speed_chunks": len(speed_texts),
                "threads": args.threads,
                "batch_tokens": CPU_BATCH_TOKENS,
            },
            "gate": GATE,
            "machine": _machine(),
            "versions": _versions(),
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


def _pick(names: str) -> list[Any]:
    if names == "all":
        return list(CANDIDATES)
    by_name = {c.name: c for c in CANDIDATES}
    unknown = [n for n in names.split(",") if n not in by_name]
    if unknown:
        raise SystemExit(
            f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(by_name)}"
        )
    return [by_name[n] for n in names.split(",")]


def _reference(
    fp32: Any, evalset: int8_evalset.EvalSet, cache: Path
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """fp32's vectors of the chunks and queries, from the cache when it holds these texts."""
    if cache.exists():
        with np.load(cache) as saved:
            return saved["chunks"], saved["queries"]
    progress(f"fp32 reference: embedding {len(evalset.chunks)} chunks")
    chunks = fp32.encode(evalset.chunks)
    queries = fp32.encode(evalset.queries)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, chunks=chunks, queries=queries)
    return chunks, queries


def _chunk_neighbours(index: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]) -> Any:
    """Each chunk's 10 nearest other chunks (itself left out)."""
    ranked = retrieval_metrics.top_k(index, queries, K + 1)
    return np.array(
        [[j for j in row if j != i][:K] for i, row in enumerate(ranked)], dtype=np.int64
    )


def _spread(texts: Sequence[str], n: int) -> list[str]:
    """`n` texts spread evenly over `texts`, so their lengths are the corpus's."""
    picks = np.linspace(0, len(texts) - 1, min(n, len(texts))).round().astype(int)
    return [texts[i] for i in picks]


def _speed(fp32: Any, runner: ModelRunner, texts: list[str]) -> dict[str, Any]:
    """chunks/s of torch fp32 (before and after) and of the candidate, after a warm-up each."""
    fp32.encode(texts[:16])
    runner.encode(texts[:16])

    def timed(encode: Any) -> float:
        start = time.perf_counter()
        encode(texts)
        return time.perf_counter() - start

    before = timed(fp32.encode)
    candidate = timed(runner.encode)
    after = timed(fp32.encode)
    fp32_rate = 2 * len(texts) / (before + after)
    rate = len(texts) / candidate
    return {
        "chunks_per_s": round(rate, 2),
        "fp32_chunks_per_s": round(fp32_rate, 2),
        "fp32_chunks_per_s_before_after": [
            round(len(texts) / before, 2),
            round(len(texts) / after, 2),
        ],
        "speedup": rate / fp32_rate,
    }


def _gate(r: dict[str, Any]) -> dict[str, Any]:
    checks = {
        "agreement": r["agreement_at_10"] >= GATE["agreement_min"],
        "ndcg": r["ndcg_points_vs_fp32"] >= -GATE["ndcg_points_max_drop"],
        "speed": r["speedup"] >= GATE["speedup_min"],
    }
    return {**checks, "verdict": "PASS" if all(checks.values()) else "FAIL"}


def _load(path: Path, fingerprint: str) -> dict[str, Any]:
    """Earlier results on the same texts, or a fresh report."""
    if path.exists():
        old: dict[str, Any] = json.loads(path.read_text())
        if old.get("texts") == fingerprint:
            return old
        progress(f"{path} holds results on other texts: starting afresh")
    return {"candidates": {}, "runs": []}


def _when() -> dict[str, Any]:
    commit = subprocess.run(
        # "-dirty" when the tracked files differ from the commit: the code measured is not it.
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit or "unknown",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _machine() -> dict[str, Any]:
    model, flags = "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "isa": {f: f in flags for f in wanted},
        "python": platform.python_version(),
    }


def _versions() -> dict[str, str]:
    found = {}
    for name in ("torch", "transformers", "openvino", "nncf", "onnxruntime", "onnx", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def table(report: dict[str, Any]) -> str:
    """The results as a plain-text table, best speed first."""
    head = (
        f"{'candidate':<24} {'chunks/s':>8} {'vs fp32':>7} {'cos mean':>8} {'cos min':>8} "
        f"{'agree@10':>8} {'nDCG@10':>7} {'Δ pts':>6}  gate"
    )
    fp32 = report.get("fp32", {})
    lines = [head, "-" * len(head)]
    lines.append(
        f"{'torch fp32 (reference)':<24} {'':>8} {'1.00x':>7} {'1':>8} {'1':>8} {'1':>8} "
        f"{100 * fp32.get('ndcg_at_10', 0):>7.2f} {'':>6}"
    )
    rows = sorted(report["candidates"].items(), key=lambda kv: -kv[1]["speedup"])
    for name, r in rows:
        verdict = r["gate"]["verdict"] if r["int8"] else "(fp32)"
        failed = [k for k in ("agreement", "ndcg", "speed") if not r["gate"][k]]
        if r["int8"] and failed:
            verdict += f" ({', '.join(failed)})"
        lines.append(
            f"{name:<24} {r['chunks_per_s']:>8.1f} {r['speedup']:>6.2f}x "
            f"{r['cosine_mean']:>8.4f} {r['cosine_min']:>8.4f} {r['agreement_at_10']:>8.3f} "
            f"{100 * r['ndcg_at_10']:>7.2f} {r['ndcg_points_vs_fp32']:>+6.2f}  {verdict}"
        )
    g = report.get("gate", GATE)
    lines.append(
        f"gate: agreement@10 >= {g['agreement_min']}, nDCG@10 no more than "
        f"{g['ndcg_points_max_drop']} point below fp32, >= {g['speedup_min']}x fp32 chunks/s"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
