"""How fast the machine runs the model's matrix products in fp32 and in bf16.

Ratio 3/1 compares the pipeline in the embedder's precision with an fp32 loop, and the model is
almost all matrix products, so 3/1 can hardly exceed the bf16:fp32 speed of those products on
the CPU at hand. That speed differs a lot between the CPUs these figures come from (about 4x on
a Xeon with AMX, 2.5-2.7x on an AMD EPYC Zen 4 with AVX512-BF16, under 1x where bf16 is only
emulated), so the bench measures it beside the ratio.
"""

from __future__ import annotations

import time

from bench.model_baselines import sync

# One feed-forward product of the default model over an 8,192-token batch (the CPU's batch
# budget): tokens x hidden size, times hidden size x intermediate size.
ROWS, INNER, OUT = 8192, 384, 1536


def gflops(dtype_name: str, device: str = "cpu", *, repeats: int = 5, scale: int = 1) -> float:
    """Best GFLOP/s of `repeats` runs of F.linear on the shape above (divided by `scale` in
    every dimension, for quick runs), in "fp32" or "bf16", on `device`."""
    import torch
    import torch.nn.functional as F

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    rows, inner, out = ROWS // scale, INNER // scale, OUT // scale
    x = torch.randn(rows, inner, dtype=dtype, device=device)
    w = torch.randn(out, inner, dtype=dtype, device=device)
    b = torch.randn(out, dtype=dtype, device=device)
    best = float("inf")
    with torch.inference_mode():
        F.linear(x, w, b)  # warm-up: oneDNN builds its kernel for the shape on the first call
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            F.linear(x, w, b)
            sync(device)
            best = min(best, time.perf_counter() - start)
    return 2 * rows * inner * out / best / 1e9


def measure(device: str = "cpu", *, scale: int = 1) -> dict[str, float]:
    """fp32 and bf16 GFLOP/s, and bf16's speed-up over fp32, each to three significant digits:
    the speed-up runs from ~0.1x (bf16 emulated on an AVX2-only CPU) to ~4x (AMX), and a fixed
    number of decimals would round the slow end to nothing."""
    fp32 = gflops("fp32", device, scale=scale)
    bf16 = gflops("bf16", device, scale=scale)
    return {
        "fp32_gflops": significant(fp32),
        "bf16_gflops": significant(bf16),
        "bf16_speedup": significant(bf16 / fp32),
    }


def significant(value: float, digits: int = 3) -> float:
    """`value` rounded to `digits` significant digits (0.02734 -> 0.0273, 394.27 -> 394.0)."""
    return float(f"{value:.{digits}g}")
