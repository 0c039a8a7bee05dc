"""The llama.cpp CPU guard: what the build was compiled for, what the CPU has, and the AMX decision."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipelines.backends import llama_cpu
from pipelines.backends.llama_cpu import LlamaBuild, parse_system_info, read_cpu_flags
from pipelines.errors import BackendUnavailable

NATIVE_AMX = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
    "AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
)
PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | OPENMP = 1 | REPACK = 1 | "
SAPPHIRE_RAPIDS = frozenset(["fpu", "sse2", "pni", "ssse3", "avx", "avx2", "f16c", "fma", "bmi2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"])
HASWELL = frozenset(["fpu", "sse2", "pni", "ssse3", "avx", "avx2", "f16c", "fma", "bmi2"])


def test_parse_system_info_reads_each_backend() -> None:
    features = parse_system_info(NATIVE_AMX + "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | ")
    assert features["CPU"]["AMX_INT8"] == "1"
    assert features["CPU"]["REPACK"] == "1"
    assert features["CUDA"] == {"ARCHS": "890", "USE_GRAPHS": "1"}


def test_auto_turns_extra_buffers_off_only_for_amx_kernels_on_an_amx_cpu() -> None:
    native_on_amx = LlamaBuild(parse_system_info(NATIVE_AMX), SAPPHIRE_RAPIDS)
    portable_on_amx = LlamaBuild(parse_system_info(PORTABLE), SAPPHIRE_RAPIDS)
    assert native_on_amx.has_amx_kernels and native_on_amx.cpu_has_amx
    assert native_on_amx.use_extra_buffers("auto") is False  # the crash path
    assert portable_on_amx.use_extra_buffers("auto") is True  # no AMX kernels: keep the CPU repack
    assert LlamaBuild(parse_system_info(PORTABLE), HASWELL).use_extra_buffers("auto") is True
    assert native_on_amx.use_extra_buffers("on") is True  # an explicit setting wins
    assert portable_on_amx.use_extra_buffers("off") is False


def test_missing_instructions_names_what_the_cpu_lacks() -> None:
    assert LlamaBuild(parse_system_info(NATIVE_AMX), HASWELL).missing_instructions() == [
        "AMX_INT8", "AVX512", "AVX512_BF16", "AVX512_VNNI"]
    assert LlamaBuild(parse_system_info(PORTABLE), HASWELL).missing_instructions() == []
    assert LlamaBuild(parse_system_info(NATIVE_AMX), frozenset()).missing_instructions() == []  # flags unknown


def test_read_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_int8\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert read_cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_int8"}
    assert read_cpu_flags(tmp_path / "absent") == frozenset()


def test_probe_turns_a_crashing_library_into_a_clear_error(tmp_path: Path) -> None:
    """A wheel built for another CPU dies with SIGILL as it loads; the probe runs it in a child and says so."""
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\nkill -ILL $$\n")
    fake_python.chmod(0o755)
    llama_cpu.probe.cache_clear()
    try:
        with pytest.raises(BackendUnavailable, match=r"crashes on this CPU as soon as it loads \(SIGILL\).*make llama"):
            llama_cpu.probe(str(fake_python))
    finally:
        llama_cpu.probe.cache_clear()


def test_probe_of_the_installed_build_matches_this_cpu() -> None:
    """The real library: its compiled features are all present on this CPU (else every load would refuse)."""
    pytest.importorskip("llama_cpp")
    build = llama_cpu.probe(sys.executable)
    assert "SSE3" in build.cpu_features  # the CPU backend reported what it was compiled for
    assert build.missing_instructions() == []
    assert "CPU" in build.summary()


def test_model_params_sets_use_extra_bufts_and_restores_the_default() -> None:
    lib = pytest.importorskip("llama_cpp.llama_cpp")
    assert lib.llama_model_default_params().use_extra_bufts is True
    with llama_cpu.model_params(False):
        assert lib.llama_model_default_params().use_extra_bufts is False
    assert lib.llama_model_default_params().use_extra_bufts is True
