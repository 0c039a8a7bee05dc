"""What the llama.cpp build and this CPU can do together, checked before a model is loaded.

Two ways llama-cpp-python kills the process on an x86-64 CPU, both seen on rented VMs:

* **AMX.** A native build (``-march=native``, llama.cpp's default) on a Xeon with AMX compiles ggml's AMX
  kernels and selects the AMX *extra buffer type* for Q4_K weights; the first ``llama_decode`` through it
  segfaults. Loading with ``use_extra_bufts = False`` avoids it (and also drops the CPU repack of weights,
  which costs some tokens/s), so that is done only when the build has AMX kernels and the CPU has AMX.
  The project's own build (``make llama``) compiles no AMX kernels, so it keeps the repack.
* **A wheel built for another CPU.** pip caches the wheel by sdist, not by build flags: a wheel built with
  AVX-512 on one machine and reused on another dies with SIGILL. :func:`probe` loads the library in a child
  process first, and compares the instruction sets it was compiled for with ``/proc/cpuinfo``.

:func:`probe` is cached per process; every in-process load (CLI, Serve, Ray Data actors) and the llama.cpp
server the project starts (:mod:`pipelines.backends.llama_server`) go through :func:`load_llama`.
"""

from __future__ import annotations

import functools
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipelines.errors import BackendUnavailable

logger = logging.getLogger(__name__)

ExtraBuffers = Literal["auto", "on", "off"]

# ggml's compile-time feature names -> the /proc/cpuinfo flag the instructions need.
FEATURE_FLAGS: dict[str, str] = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX_VNNI": "avx_vnni",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
}

_PROBE = "import sys, llama_cpp; sys.stdout.write(llama_cpp.llama_print_system_info().decode())"
_PROBE_TIMEOUT_S = 60.0
_PATCH_LOCK = threading.Lock()


@dataclass(frozen=True)
class LlamaBuild:
    """The loaded library's compile-time features (``{"CPU": {"AVX2": "1", ...}}``) and this CPU's flags."""

    features: dict[str, dict[str, str]]
    cpu_flags: frozenset[str]

    @property
    def cpu_features(self) -> set[str]:
        return set(self.features.get("CPU", {}))

    @property
    def has_amx_kernels(self) -> bool:
        return "AMX_INT8" in self.cpu_features

    @property
    def cpu_has_amx(self) -> bool:
        return "amx_int8" in self.cpu_flags or "amx_tile" in self.cpu_flags

    def missing_instructions(self) -> list[str]:
        """Compiled-in instruction sets this CPU lacks (empty when the flags are unknown, e.g. not Linux)."""
        if not self.cpu_flags:
            return []
        return sorted(f for f in self.cpu_features if f in FEATURE_FLAGS and FEATURE_FLAGS[f] not in self.cpu_flags)

    def use_extra_buffers(self, setting: ExtraBuffers) -> bool:
        """Whether to load with ggml's extra buffer types (CPU repack, AMX); ``auto`` avoids the AMX crash."""
        if setting != "auto":
            return setting == "on"
        return not (self.has_amx_kernels and self.cpu_has_amx)

    def summary(self) -> str:
        return " | ".join(f"{reg}: {' '.join(sorted(f for f, v in feats.items() if v == '1') or feats)}"
                          for reg, feats in self.features.items())


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """Parse ``llama_print_system_info()``: ``"CPU : SSE3 = 1 | AVX2 = 1 | REPACK = 1 | "`` per backend."""
    features: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        if " : " in part:  # a new backend starts: "CPU : SSE3 = 1"
            reg, part = part.split(" : ", 1)
            current = features.setdefault(reg.strip(), {})
        name, _, value = part.partition("=")
        if current is not None and name.strip():
            current[name.strip()] = value.strip()
    return features


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's ``flags`` line of /proc/cpuinfo (empty where there is none)."""
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def probe(python: str = sys.executable) -> LlamaBuild:
    """Load llama-cpp-python in a child process and read what it was built for; cached per process.

    Raises BackendUnavailable when loading the library kills the child (a wheel built for another CPU),
    or when the build needs instructions this CPU lacks.
    """
    try:
        proc = subprocess.run(
            [python, "-c", _PROBE], check=False, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise BackendUnavailable(f"loading llama-cpp-python took over {_PROBE_TIMEOUT_S:.0f} s") from exc
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise BackendUnavailable(
            f"llama-cpp-python crashes on this CPU as soon as it loads ({name}): it was built for another CPU. "
            "Rebuild it here: `make llama` (a portable build), then rerun"
        )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackendUnavailable(f"llama-cpp-python does not load: {tail}")
    build = LlamaBuild(parse_system_info(proc.stdout), read_cpu_flags())
    missing = build.missing_instructions()
    if missing:
        raise BackendUnavailable(
            f"this llama-cpp-python build uses {', '.join(missing)}, which this CPU lacks (it was built on another "
            "machine); rebuild it here: `make llama`"
        )
    return build


@contextmanager
def model_params(use_extra_bufts: bool) -> Iterator[None]:
    """Make ``Llama(...)`` start from model params with ``use_extra_bufts`` set.

    llama-cpp-python (0.3.36) does not take ``use_extra_bufts`` as an argument, but ``Llama.__init__`` starts
    from ``llama_cpp.llama_model_default_params()``, looked up at call time; it is wrapped for the duration.
    """
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = use_extra_bufts
        return p

    with _PATCH_LOCK:
        lib.llama_model_default_params = params
        try:
            yield
        finally:
            lib.llama_model_default_params = original


def load_llama(extra_buffers: ExtraBuffers = "auto", **kwargs: Any) -> Any:
    """``llama_cpp.Llama(**kwargs)`` (or ``Llama.from_pretrained`` with ``repo_id``) after :func:`probe`.

    The extra buffer types are used as ``extra_buffers`` says (``auto``: off only where the AMX path would
    crash); the choice and the build's features are logged once per load. Raises BackendUnavailable.
    """
    build = probe()
    use = build.use_extra_buffers(extra_buffers)
    logger.info(
        "llama.cpp build: %s; CPU has AMX: %s; extra buffer types (CPU repack, AMX): %s (setting %s)",
        build.summary(), build.cpu_has_amx, "on" if use else "off", extra_buffers,
    )
    if not use and extra_buffers == "auto":
        logger.warning("this llama.cpp build has AMX kernels and the CPU has AMX: extra buffer types are off, "
                       "avoiding ggml's AMX crash (a portable build, `make llama`, keeps the faster repack)")
    from llama_cpp import Llama

    with model_params(use):
        if "repo_id" in kwargs:
            return Llama.from_pretrained(**kwargs)
        return Llama(**kwargs)
