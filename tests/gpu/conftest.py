"""The GPU checks (``make test-gpu``): skipped without CUDA, each with its reason; the figures they measure are
printed at the end of the run and written to ``$VT_GPU_REPORT`` (default ``var/gpu-report.json``), the rows of
docs/BENCHMARKS.md "GPU check (issue 19)".

Inputs (no model hub is reached): ``VT_TEST_GPU_ASR_MODEL`` (default ``bundled:whisper-base``; ``large-v3`` or a
local CTranslate2 folder where one is at hand) and ``VT_TEST_VLLM_MODEL``, a local folder of a small instruction
model for vLLM (e.g. Qwen2.5-0.5B-Instruct or Qwen2.5-1.5B-Instruct in Hugging Face format).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIGURES: list[dict[str, Any]] = []


def cuda_devices() -> int:
    """CUDA devices CTranslate2 sees (it ships with faster-whisper; no torch needed)."""
    try:
        import ctranslate2
    except ImportError:
        return 0
    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # noqa: BLE001  (no driver, a broken CUDA install: both mean no usable GPU)
        return 0


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture (a Ray cluster, a model) is set up."""
    if item.get_closest_marker("gpu") is not None and cuda_devices() == 0:
        pytest.skip("no CUDA device (make test-gpu runs on a machine with an NVIDIA GPU)")


@pytest.fixture
def figures() -> Iterator[list[dict[str, Any]]]:
    """Append ``{"check": ..., <figure>: value, ...}`` rows; they are reported at the end of the session."""
    yield FIGURES


@pytest.fixture(scope="session")
def gpu_ray() -> Iterator[None]:
    """A local Ray with every CPU and GPU of the machine (the CPU tests' session cluster has 2 CPUs, too few for
    the GPU profile's deployments). One already up in this process is reused and left to its owner."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray
    from ray import serve

    if ray.is_initialized():
        yield
        return
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def vllm_model() -> str:
    path = os.environ.get("VT_TEST_VLLM_MODEL", "")
    if not path:
        pytest.skip("VT_TEST_VLLM_MODEL is not set: a local folder of a small instruction model for vLLM")
    if not Path(path).is_dir():
        pytest.fail(f"VT_TEST_VLLM_MODEL={path} is not a folder")
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    out = Path(os.environ.get("VT_GPU_REPORT", "var/gpu-report.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(FIGURES, indent=2) + "\n")
    terminalreporter.section("GPU figures (docs/BENCHMARKS.md, issue 19)")
    for row in FIGURES:
        terminalreporter.line("  ".join(f"{k}={v}" for k, v in row.items()))
    terminalreporter.line(f"written to {out}")
