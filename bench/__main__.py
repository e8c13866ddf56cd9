"""`python -m bench`: run the benchmark, print the table, write bench.json and bench.png."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import corpus, matmul_speed, report, scale

QUICK = {
    "modules": 12,
    "max_doc_kib": 3,
    "gateway_calls": 300,
    "gateway_seconds": 3.0,
    "big_doc_mb": 2,
    "ceiling_repeat": 1,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --quick shrinks every size for a smoke run."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    p.add_argument(
        "--modules", type=int, default=200, help="standard-library modules in the corpus"
    )
    p.add_argument(
        "--max-doc-kib",
        type=float,
        default=8,
        help="cut each pydoc page to this many KiB (0: whole pages, ~5700 chunks for 200 modules)",
    )
    p.add_argument("--out", type=Path, default=Path(".bench"), help="where bench.json/png go")
    p.add_argument(
        "--threads", type=int, default=-1, help="torch threads (default: RAGLINE_TORCH_THREADS)"
    )
    p.add_argument("--redis-url", default=None, help="default: RAGLINE_REDIS_URL or local Redis")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in ~1-2 min")
    p.add_argument("--skip-models", action="store_true", help="skip measurements 1 and 2")
    p.add_argument("--skip-e2e", action="store_true", help="skip measurement 3")
    p.add_argument("--skip-gateway", action="store_true", help="skip measurement 4")
    p.add_argument(
        "--metrics",
        choices=("both", "on", "off"),
        default="both",
        help="measurement 3 with every service's /metrics served and scraped each second (on), "
        "without (off), or both, on then off, with the overhead (default)",
    )
    p.add_argument(
        "--chunkers", type=int, default=1, help="chunker processes in measurement 3 (scale-out)"
    )
    p.add_argument("--concurrency", type=int, default=64, help="concurrent gateway calls")
    p.add_argument(
        "--gateway-calls", type=int, default=20000, help="calls per gateway test (capped by time)"
    )
    p.add_argument("--gateway-seconds", type=float, default=10.0, help="time cap per gateway test")
    p.add_argument("--batch-docs", type=int, default=32, help="documents per IngestBatch call")
    p.add_argument(
        "--big-doc-mb",
        type=float,
        default=50,
        help="measure the chunker's peak RSS on one text document this large (about 20 s "
        "for 50 MB on 2 cores); 0 skips",
    )
    p.add_argument(
        "--skip-ceiling",
        action="store_true",
        help="skip measurement 6 (the pipeline's ceiling with a stand-in for the model)",
    )
    p.add_argument(
        "--ceiling-repeat",
        type=int,
        default=16,
        help="measurement 6 ingests the corpus this many times over, under distinct document "
        "ids (16: ~26,000 chunks, ~20 s at the target)",
    )
    scale.add_arguments(p)
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    return args


def machine_info(device: str, threads: int, quick: bool = False) -> dict[str, Any]:
    """What the figures came from, with the speed of its matrix products (see matmul_speed)."""
    import psutil  # type: ignore[import-untyped]
    import torch

    from ragline.embedder.precision import NATIVE_BF16_CPU_FLAGS, cpu_flags

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        # Machines differ between runs here; this decides what `auto` precision picks.
        "cpu_bf16_flags": sorted(cpu_flags() & NATIVE_BF16_CPU_FLAGS),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "device": device,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["matmul"] = matmul_speed.measure(device, scale=4 if quick else 1)
    return info


def _step(message: str) -> float:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
    return time.perf_counter()


def _models(
    texts: list[str], device: str, threads: int, batch_tokens: int, precision: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measurements 1 and 2 on `texts`."""
    from bench import model_baselines

    _step(f"1. hand-written transformers loop over {len(texts)} chunks")
    hand = model_baselines.hand_loop(texts, device, threads)
    _step(f"   {hand['chunks_per_s']:.2f} chunks/s; 2. embedder path, precision {precision}")
    ceiling = model_baselines.embedder_path(texts, device, threads, batch_tokens, precision)
    _step(f"   {ceiling['chunks_per_s']:.2f} chunks/s in {ceiling['precision']}")
    return hand, ceiling


def main(argv: list[str] | None = None) -> int:
    """Runs every measurement not skipped; returns 0 (targets missed are reported, not errors)."""
    args = parse_args(argv)
    for var, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1")):
        os.environ.setdefault(var, value)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from bench import gateway_load, model_baselines, pipeline
    from ragline.config import Settings

    settings = Settings.from_env(os.environ)
    redis_url = args.redis_url or settings.redis_url
    threads = settings.torch_threads if args.threads < 0 else args.threads
    if threads > 0:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()  # what the embedder gets too (same default)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"

    t = _step(f"corpus: {args.modules} modules, pages cut to {args.max_doc_kib} KiB")
    corp = corpus.build(args.modules, int(args.max_doc_kib * 1024))
    figures: dict[str, Any] = {
        "machine": machine_info(args.device, threads, args.quick),
        "settings": {
            "embed_batch_tokens": settings.embed_batch_tokens,
            "precision": settings.precision,
            "read_batch_size": settings.read_batch_size,
            "chunks_per_embed_task": settings.chunks_per_embed_task,
            "modules": args.modules,
            "max_doc_kib": args.max_doc_kib,
            "quick": args.quick,
            "ceiling_repeat": args.ceiling_repeat,
        },
        "corpus": corp.stats(),
    }
    figures["corpus"]["build_seconds"] = round(time.perf_counter() - t, 2)
    if args.scale:  # the scale mode alone (bench/scale.py)
        return scale.run(args, corp, figures, redis_url, threads, out)
    texts = corp.chunks

    if not args.skip_models:
        hand, ceiling = _models(
            texts, args.device, threads, settings.embed_batch_tokens, settings.precision
        )
        figures["quality"] = {
            "min_cosine": model_baselines.min_cosine(hand.pop("vectors"), ceiling.pop("vectors"))
        }
        figures["hand_loop"], figures["embedder_path"] = hand, ceiling
        del hand, ceiling

    if not args.skip_e2e:
        # On first: whatever a first run pays more counts against metrics, not for them.
        runs = {"both": (True, False), "on": (True,), "off": (False,)}[args.metrics]
        for metrics in runs:
            _step(
                "3. end-to-end: gateway -> chunker -> embedder -> indexer, metrics "
                + ("on" if metrics else "off")
            )
            e2e = pipeline.end_to_end(
                corp, work, redis_url, args.device, threads, args.chunkers, metrics=metrics
            )
            _step(f"   {e2e['chunks_per_s']:.2f} chunks/s")
            # The figure is the run with metrics (as deployed) when both ran.
            figures["end_to_end" if metrics or runs == (False,) else "end_to_end_metrics_off"] = e2e
        if not args.skip_models:
            _step("1 and 2 again, after 3: the ratios use the mean of both runs")
            hand, ceiling = _models(
                texts, args.device, threads, settings.embed_batch_tokens, settings.precision
            )
            for key, again in (("hand_loop", hand), ("embedder_path", ceiling)):
                again.pop("vectors")
                figures[key] = report.bracket(figures[key], again)

    if not args.skip_gateway:
        _step(f"4. gateway alone, {args.concurrency} concurrent calls")
        figures["gateway"] = gateway_load.gateway_alone(
            corp,
            work,
            redis_url,
            calls=args.gateway_calls,
            duration_s=args.gateway_seconds,
            concurrency=args.concurrency,
            batch_docs=args.batch_docs,
        )

    if args.big_doc_mb > 0:
        _step(f"5. chunker peak RSS on one {args.big_doc_mb:g} MB document")
        figures["chunker_big_document"] = pipeline.chunker_big_document(
            corp, work, redis_url, args.big_doc_mb
        )

    if not args.skip_ceiling:
        _step(
            f"6. ceiling: the whole pipeline with a STAND-IN for the model (hash vectors), "
            f"corpus x{args.ceiling_repeat}"
        )
        ceiling_run = pipeline.end_to_end(
            corp,
            work,
            redis_url,
            "cpu",
            threads,
            args.chunkers,
            metrics=False,
            standin=True,
            repeat=args.ceiling_repeat,
        )
        ceiling_run["embedder"] = "stand-in (not the model): hash-seeded unit vectors"
        figures[report.CEILING_KEY] = ceiling_run
        _step(f"   {ceiling_run['chunks_per_s']:.0f} chunks/s (stand-in, not the model)")

    print(report.table(figures))
    report.write_json(figures, out / "bench.json")
    report.draw(figures, out / "bench.png")
    print(f"\nwrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
