"""Which floating-point precision the embedding model runs in; pure logic, no torch.

    requested   device  native bf16         result
    auto        cuda    GPU supports bf16   bf16
    auto        cuda    no                  fp16
    auto        cpu     avx512_bf16/amx     bf16
    auto        cpu     no                  fp32
    fp32        any     -                   fp32
    bf16        any     no                  bf16, with a warning: emulated, may be slower than fp32
    fp16        cuda    -                   fp16
    fp16        cpu     -                   ConfigurationError: fp16 is GPU-only

Vectors always leave the encoder as float32 whatever the model ran in.

"Native bf16" honours oneDNN's own cap, ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA):
with `ONEDNN_MAX_CPU_ISA=AVX2` oneDNN uses no bf16 instructions, so `auto` picks fp32 as on an
AVX2-only CPU. That is how `make test` checks the AVX2 path on a machine that has bf16.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ragline.errors import ConfigurationError

__all__ = ["NATIVE_BF16_CPU_FLAGS", "PRECISIONS", "choose_dtype", "cpu_flags"]

log = logging.getLogger(__name__)

# What RAGLINE_PRECISION accepts.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# /proc/cpuinfo flags of x86 CPUs that multiply bf16 matrices in hardware (Zen 4+, Cooper Lake,
# Sapphire Rapids+). Without one, torch converts bf16 to fp32 and back around every product,
# which on an AVX2 CPU runs several times slower than plain fp32.
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})

# The native-bf16 flags that oneDNN leaves unused when ONEDNN_MAX_CPU_ISA caps it at a level:
# every level up to AVX512_CORE_VNNI has no bf16, and only the AMX levels use AMX. A value not
# listed (an AMX level, ALL, DEFAULT, a newer name) caps nothing here.
_ISA_CAPS = {
    **dict.fromkeys(
        ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"),
        NATIVE_BF16_CPU_FLAGS,
    ),
    **dict.fromkeys(
        ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512"), frozenset({"amx_bf16"})
    ),
}


def choose_dtype(
    requested: str, device: str, cpu_flags: frozenset[str], *, cuda_bf16: bool = False
) -> str:
    """The precision to run in: "fp32", "bf16" or "fp16" (see the module's table).

    `device` is a torch device string ("cpu", "cuda", "cuda:1"); `cpu_flags` are the CPU's
    /proc/cpuinfo flags (see `cpu_flags()`), read only on a CPU; `cuda_bf16` says whether the
    GPU computes in bf16 natively (Ampere and later). Raises ConfigurationError for an unknown
    precision or fp16 on a CPU.
    """
    if requested not in PRECISIONS:
        raise ConfigurationError(
            f"precision {requested!r} is unknown; choose one of {', '.join(PRECISIONS)}."
        )
    on_gpu = device.split(":", 1)[0] == "cuda"
    native_bf16 = cuda_bf16 if on_gpu else bool(cpu_flags & NATIVE_BF16_CPU_FLAGS)
    if requested == "auto":
        if on_gpu:
            return "bf16" if native_bf16 else "fp16"
        return "bf16" if native_bf16 else "fp32"
    if requested == "fp16" and not on_gpu:
        raise ConfigurationError(
            f"precision 'fp16' is GPU-only: CPUs have no fast fp16 arithmetic (device {device!r}). "
            "Use 'bf16' on a CPU with avx512_bf16 or amx_bf16, 'fp32', or 'auto'."
        )
    if requested == "bf16" and not native_bf16:
        what = (
            "this GPU" if on_gpu else f"this CPU (no {' or '.join(sorted(NATIVE_BF16_CPU_FLAGS))})"
        )
        log.warning(
            "precision bf16 forced on %s, which has no native bf16 arithmetic: it is emulated "
            "and may be slower than fp32; 'auto' would pick %s",
            what,
            "fp16" if on_gpu else "fp32",
        )
    return requested


def cpu_flags(
    cpuinfo: Path = Path("/proc/cpuinfo"), *, max_isa: str | None = None
) -> frozenset[str]:
    """The CPU feature flags from the first "flags" line of `cpuinfo` (empty when unreadable),
    less the native-bf16 ones that oneDNN is told not to use.

    `max_isa` is a oneDNN ISA level such as "AVX2"; None reads ONEDNN_MAX_CPU_ISA (or
    DNNL_MAX_CPU_ISA) from the environment, as oneDNN itself does, so the precision picked
    matches the instructions oneDNN will really run.
    """
    if max_isa is None:
        max_isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA", "")
    capped = _ISA_CAPS.get(max_isa.strip().upper(), frozenset())
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "flags":
                    return frozenset(value.split()) - capped
    except OSError:
        pass
    return frozenset()
