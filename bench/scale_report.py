"""The scale mode's growth ratios and its printed table (see bench.scale)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

MiB = 2**20


def ratio(a: float, b: float) -> float:
    """a / b to 3 decimals, or 0.0 when b is 0."""
    return round(a / b, 3) if b else 0.0


def redis_cpu_per_1000(size: dict[str, Any]) -> float:
    """The Redis server's CPU seconds per 1,000 chunks indexed in one size's run."""
    cpu = size.get("stores", {}).get("redis", {}).get("server_cpu_seconds", 0.0)
    indexed = size["chunks_indexed"]
    return round(1000 * cpu / indexed, 3) if indexed else 0.0


def _store(size: dict[str, Any], *path: str) -> float:
    value: Any = size.get("stores", {})
    for key in path:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return float(value) if isinstance(value, int | float) else 0.0


def growth(scale: dict[str, Any]) -> dict[str, Any]:
    """Each figure at the largest size (or backlog) over the smallest. Work grew by `work_ratio`:
    a per-1,000-chunk cost that grows linearly with work has a ratio of 1, a total one (memory
    after, the file) has `work_ratio`; what lies above those grows faster than the work."""
    out: dict[str, Any] = {}
    sizes = scale.get("work_growth") or []
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        out["work"] = {
            "from_repeat": lo["repeat"],
            "to_repeat": hi["repeat"],
            "work_ratio": ratio(hi["chunks_indexed"], lo["chunks_indexed"]),
            "seconds_per_1000_chunks": ratio(
                hi["seconds_per_1000_chunks"], lo["seconds_per_1000_chunks"]
            ),
            "chunks_per_s": ratio(hi["chunks_per_s"], lo["chunks_per_s"]),
            "cpu_seconds_per_1000_chunks": {
                stage: ratio(v, lo["cpu_seconds_per_1000_chunks"].get(stage, 0.0))
                for stage, v in hi["cpu_seconds_per_1000_chunks"].items()
            },
            "redis_cpu_seconds_per_1000_chunks": ratio(
                redis_cpu_per_1000(hi), redis_cpu_per_1000(lo)
            ),
            "peak_rss_bytes": {
                stage: ratio(v, lo["peak_rss_bytes"].get(stage, 0))
                for stage, v in hi["peak_rss_bytes"].items()
            },
            "redis_used_memory_peak_delta_bytes": ratio(
                _store(hi, "redis", "used_memory_peak_delta_bytes"),
                _store(lo, "redis", "used_memory_peak_delta_bytes"),
            ),
            "redis_namespace_bytes_after": ratio(
                _store(hi, "redis", "namespace_after", "bytes"),
                _store(lo, "redis", "namespace_after", "bytes"),
            ),
            "milvus_lite_bytes": ratio(
                _store(hi, "milvus_lite_bytes"), _store(lo, "milvus_lite_bytes")
            ),
        }
    levels = (scale.get("backlog") or {}).get("levels") or []
    if len(levels) >= 2:
        lo, hi = levels[0], levels[-1]
        out["backlog"] = {
            "from_backlog": lo["backlog"],
            "to_backlog": hi["backlog"],
            "p99_ms": ratio(hi["ingest"]["p99_ms"], lo["ingest"]["p99_ms"]),
            "p50_ms": ratio(hi["ingest"]["p50_ms"], lo["ingest"]["p50_ms"]),
            "calls_per_s": ratio(hi["ingest"]["calls_per_s"], lo["ingest"]["calls_per_s"]),
        }
    return out


Getter = Callable[[dict[str, Any]], float]
Row = tuple[str, Getter | None, str]  # no getter: a heading for the rows below it


def _rows(
    title: str,
    columns: Sequence[str],
    items: Sequence[dict[str, Any]],
    rows: Sequence[Row],
) -> list[str]:
    """One block of the table: a row per figure, a column per size, then last / first."""
    width = max(10, *(len(c) + 2 for c in columns))
    head = f"{title:<46}" + "".join(f"{c:>{width}}" for c in columns) + f"{'last/first':>12}"
    lines = ["", head]
    for label, get, fmt in rows:
        if get is None:
            lines.append(f"  {label}")
            continue
        values = [get(item) for item in items]
        cells = "".join(f"{fmt.format(v):>{width}}" for v in values)
        growth = f"{ratio(values[-1], values[0]):>12.2f}" if len(values) > 1 and values[0] else ""
        lines.append(f"  {label:<44}{cells}{growth}")
    return lines


def _per_stage(key: str, stage: str, scale: float = 1.0) -> Getter:
    return lambda size: float(size[key].get(stage, 0.0)) / scale


def _store_getter(*path: str, scale: float = 1.0) -> Getter:
    return lambda size: _store(size, *path) / scale


def _work_lines(sizes: list[dict[str, Any]]) -> list[str]:
    standin = "stand-in" in sizes[0]["embedder"]
    stages = sorted(sizes[0]["cpu_seconds_per_1000_chunks"])

    def named(stage: str) -> str:
        return f"{stage} (stand-in, not the model)" if standin and stage == "embedder" else stage

    rows: list[Row] = [
        ("chunks indexed", lambda s: s["chunks_indexed"], "{:,.0f}"),
        ("seconds, first Ingest to last job done", lambda s: s["seconds"], "{:.1f}"),
        ("chunks/s", lambda s: s["chunks_per_s"], "{:.0f}"),
        ("seconds per 1,000 chunks", lambda s: s["seconds_per_1000_chunks"], "{:.3f}"),
        ("CPU seconds per 1,000 chunks:", None, ""),
    ]
    rows += [
        (f"  {named(st)}", _per_stage("cpu_seconds_per_1000_chunks", st), "{:.3f}") for st in stages
    ]
    rows.append(("  Redis (the server: shared)", redis_cpu_per_1000, "{:.3f}"))
    rows.append(("peak RSS MiB:", None, ""))
    rows += [(f"  {named(st)}", _per_stage("peak_rss_bytes", st, MiB), "{:.0f}") for st in stages]
    rows += [
        ("stores MiB:", None, ""),
        (
            "  Redis used_memory, peak rise (shared)",
            _store_getter("redis", "used_memory_peak_delta_bytes", scale=MiB),
            "{:.1f}",
        ),
        (
            "  Redis, the run's keys once all is done",
            _store_getter("redis", "namespace_after", "bytes", scale=MiB),
            "{:.1f}",
        ),
        ("  Milvus Lite file", _store_getter("milvus_lite_bytes", scale=MiB), "{:.1f}"),
    ]
    title = "work growth (a fresh stack per size)"
    lines = _rows(title, [f"x{s['repeat']}" for s in sizes], sizes, rows)
    states = "; ".join(f"x{s['repeat']}: {s['job_states']}" for s in sizes)
    lines.append(f"  jobs: {states}")
    return lines


def _backlog_lines(backlog: dict[str, Any]) -> list[str]:
    levels = backlog["levels"]
    rows: list[Row] = [
        ("documents waiting at the start of the load", lambda b: b["waiting_at_start"], "{:,.0f}"),
        ("documents waiting at its end", lambda b: b["waiting_at_end"], "{:,.0f}"),
        ("Ingest calls/s", lambda b: b["ingest"]["calls_per_s"], "{:.0f}"),
        ("Ingest p50 ms", lambda b: b["ingest"]["p50_ms"], "{:.1f}"),
        ("Ingest p99 ms", lambda b: b["ingest"]["p99_ms"], "{:.1f}"),
        ("Ingest errors", lambda b: b["ingest"]["errors"], "{:.0f}"),
        ("filling it: IngestBatch docs/s", lambda b: b["fill"]["docs_per_s"], "{:.0f}"),
        (
            "Redis: its keys after the load MiB",
            lambda b: b["redis_namespace"]["bytes"] / MiB,
            "{:.1f}",
        ),
        (
            "Redis: bytes per waiting document",
            lambda b: b["redis_bytes_per_waiting_document"],
            "{:.0f}",
        ),
        (
            "Redis used_memory rise in the fill MiB (shared)",
            lambda b: b["redis_used_memory_fill_delta_bytes"] / MiB,
            "{:.1f}",
        ),
        ("gateway RSS MiB", lambda b: b["gateway_rss_bytes"] / MiB, "{:.0f}"),
    ]
    title = (
        f"backlog (gateway alone; {backlog['concurrency']} concurrent Ingest of "
        f"{backlog['doc_bytes']} B, {backlog['load_seconds']:g} s each in {backlog['rounds']} turns)"
    )
    return _rows(title, [f"{b['backlog']:,}" for b in levels], levels, rows)


def table(figures: dict[str, Any]) -> str:
    """The scale mode's plain-text report."""
    m, scale = figures["machine"], figures["scale"]
    c = figures["corpus"]
    lines = [
        f"ragline bench --scale  device={scale['plan']['device'] if scale['plan']['model'] else 'cpu'}  "
        f"cpu={m['cpu_model']} ({m['cores']} cores)  load avg {scale['load_average_start']} at "
        f"the start, {scale.get('load_average_end', '?')} at the end  commit {scale['commit']}  "
        f"{m.get('time', '')}",
        f"corpus x1: {c['documents']} pydoc documents, {c['chunks']} chunks; "
        f"embedder in the work-growth part: {scale['plan']['embedder']}",
    ]
    if scale.get("work_growth"):
        lines += _work_lines(scale["work_growth"])
    if scale.get("backlog"):
        lines += _backlog_lines(scale["backlog"])
    g = scale.get("growth", {})
    if "work" in g:
        w = g["work"]
        rss = ", ".join(f"{k} {v:.2f}" for k, v in sorted(w["peak_rss_bytes"].items()))
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(w["cpu_seconds_per_1000_chunks"].items()))
        lines += [
            "",
            f"growth x{w['from_repeat']} -> x{w['to_repeat']} (work x{w['work_ratio']:g}; "
            "per-1,000-chunk figures: 1.00 is linear):",
            f"  seconds per 1,000 chunks {w['seconds_per_1000_chunks']:.2f}; CPU s per 1,000 "
            f"chunks: {cpu}; Redis {w['redis_cpu_seconds_per_1000_chunks']:.2f}",
            f"  peak RSS: {rss}; Redis keys after {w['redis_namespace_bytes_after']:.2f}; "
            f"Milvus Lite file {w['milvus_lite_bytes']:.2f} (linear: {w['work_ratio']:g})",
        ]
    if "backlog" in g:
        b = g["backlog"]
        lines.append(
            f"growth backlog {b['from_backlog']:,} -> {b['to_backlog']:,}: Ingest p99 "
            f"{b['p99_ms']:.2f}x, p50 {b['p50_ms']:.2f}x, calls/s {b['calls_per_s']:.2f}x"
        )
    return "\n".join(lines)
