"""The precision table, CPU flag reading, and the RAGLINE_PRECISION setting."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ragline.config import Settings
from ragline.embedder.precision import NATIVE_BF16_CPU_FLAGS, PRECISIONS, choose_dtype, cpu_flags
from ragline.errors import ConfigurationError

pytestmark = [pytest.mark.unit, pytest.mark.cpu_paths]

AVX2 = frozenset({"fpu", "sse2", "avx", "avx2", "fma"})
ZEN4 = AVX2 | {"avx512f", "avx512_bf16"}
SAPPHIRE_RAPIDS = AVX2 | {"avx512f", "amx_tile", "amx_bf16", "amx_int8"}


@pytest.mark.parametrize(
    ("requested", "device", "flags", "cuda_bf16", "expected"),
    [
        ("auto", "cpu", AVX2, False, "fp32"),
        ("auto", "cpu", frozenset(), False, "fp32"),
        ("auto", "cpu", ZEN4, False, "bf16"),
        ("auto", "cpu", SAPPHIRE_RAPIDS, False, "bf16"),
        # avx512f alone converts bf16 but does not multiply it.
        ("auto", "cpu", AVX2 | {"avx512f"}, False, "fp32"),
        ("auto", "cuda", frozenset(), False, "fp16"),
        ("auto", "cuda", frozenset(), True, "bf16"),
        ("auto", "cuda:1", frozenset(), True, "bf16"),
        # The GPU decides on CUDA, whatever the host CPU has.
        ("auto", "cuda", ZEN4, False, "fp16"),
        ("fp32", "cpu", ZEN4, False, "fp32"),
        ("fp32", "cuda", frozenset(), True, "fp32"),
        ("bf16", "cpu", ZEN4, False, "bf16"),
        ("bf16", "cpu", AVX2, False, "bf16"),
        ("bf16", "cuda", frozenset(), True, "bf16"),
        ("fp16", "cuda", frozenset(), True, "fp16"),
        ("fp16", "cuda:0", frozenset(), False, "fp16"),
    ],
)
def test_table(
    requested: str, device: str, flags: frozenset[str], cuda_bf16: bool, expected: str
) -> None:
    assert choose_dtype(requested, device, flags, cuda_bf16=cuda_bf16) == expected


@pytest.mark.parametrize("flags", [AVX2, ZEN4])
def test_fp16_on_a_cpu_is_a_configuration_error(flags: frozenset[str]) -> None:
    with pytest.raises(ConfigurationError, match="GPU-only"):
        choose_dtype("fp16", "cpu", flags)


@pytest.mark.parametrize("requested", ["int8", "FP32", "", "float32"])
def test_unknown_precision_is_a_configuration_error(requested: str) -> None:
    with pytest.raises(ConfigurationError, match="auto, fp32, bf16, fp16"):
        choose_dtype(requested, "cpu", AVX2)


def test_forced_bf16_without_native_support_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ragline.embedder.precision"):
        assert choose_dtype("bf16", "cpu", AVX2) == "bf16"
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "may be slower than fp32" in message
    assert "avx512_bf16" in message


@pytest.mark.parametrize(
    ("requested", "device", "flags", "cuda_bf16"),
    [
        ("bf16", "cpu", ZEN4, False),
        ("bf16", "cuda", frozenset(), True),
        ("auto", "cpu", AVX2, False),
        ("fp32", "cpu", AVX2, False),
    ],
)
def test_no_warning_when_nothing_is_emulated(
    caplog: pytest.LogCaptureFixture,
    requested: str,
    device: str,
    flags: frozenset[str],
    cuda_bf16: bool,
) -> None:
    with caplog.at_level(logging.WARNING, logger="ragline.embedder.precision"):
        choose_dtype(requested, device, flags, cuda_bf16=cuda_bf16)
    assert caplog.records == []


def test_cpu_flags_reads_the_first_flags_line(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\n"
        "flags\t\t: fpu avx2 avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert cpu_flags(cpuinfo, max_isa="") == frozenset({"fpu", "avx2", "avx512_bf16"})


@pytest.mark.parametrize(
    ("max_isa", "kept"),
    [
        ("", {"avx512_bf16", "amx_bf16"}),
        ("ALL", {"avx512_bf16", "amx_bf16"}),
        ("AVX512_CORE_AMX", {"avx512_bf16", "amx_bf16"}),
        ("AVX512_CORE_BF16", {"avx512_bf16"}),
        ("avx512_core_bf16", {"avx512_bf16"}),  # oneDNN takes any case
        ("AVX512_CORE", set()),
        ("AVX2", set()),
    ],
)
def test_cpu_flags_drop_the_bf16_that_onednn_is_capped_below(
    tmp_path: Path, max_isa: str, kept: set[str]
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    flags = cpu_flags(cpuinfo, max_isa=max_isa)
    assert flags & NATIVE_BF16_CPU_FLAGS == kept
    assert {"fpu", "avx2", "avx512f"} <= flags
    # What `auto` picks follows: as on an AVX2-only CPU once oneDNN is capped below bf16.
    assert choose_dtype("auto", "cpu", flags) == ("bf16" if kept else "fp32")


def test_cpu_flags_read_onednns_cap_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: avx2 avx512_bf16\n")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")  # the old name still counts
    assert cpu_flags(cpuinfo) == frozenset({"avx2"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")  # the new name wins
    assert cpu_flags(cpuinfo) == frozenset({"avx2", "avx512_bf16"})


def test_cpu_flags_is_empty_when_unreadable_or_absent(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == frozenset()
    # An aarch64 cpuinfo has "Features", not "flags".
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(arm) == frozenset()


def test_cpu_flags_of_this_machine_is_a_set_of_names() -> None:
    flags = cpu_flags()
    assert all(isinstance(f, str) and f and " " not in f for f in flags)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_settings_accept_each_precision(precision: str) -> None:
    settings = Settings.from_env({"RAGLINE_PRECISION": precision})
    assert settings.precision == precision


def test_settings_default_to_auto_and_reject_others() -> None:
    assert Settings.from_env({}).precision == "auto"
    with pytest.raises(ConfigurationError, match="RAGLINE_PRECISION"):
        Settings.from_env({"RAGLINE_PRECISION": "int8"})
