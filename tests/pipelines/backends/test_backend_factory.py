"""make_backend: lazy imports, the auto choice, and clear errors for missing libraries or models."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from configs.settings import TranslatorSettings
from pipelines import backends
from pipelines.backends import choose_backend, make_backend
from pipelines.errors import BackendUnavailable, ModelError


def test_importing_translate_loads_no_heavy_library() -> None:
    code = (
        "import sys, pipelines.translate, pipelines.backends;"
        "heavy = [m for m in ('ray', 'llama_cpp', 'openai', 'vllm', 'torch') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_vllm_missing_says_how_to_install() -> None:
    with pytest.raises(BackendUnavailable, match=r"pip install 'videotranslator\[gpu\]'"):
        make_backend(TranslatorSettings(backend="vllm", model="Qwen/Qwen2.5-1.5B-Instruct"), Path("/nonexistent"))


def test_auto_choice_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    choose_backend.cache_clear()
    caplog.set_level("INFO", logger="pipelines.backends")
    first = choose_backend()
    assert choose_backend() == first
    assert caplog.text.count("translator backend auto ->") == 1
    expected = "llama_cpp" if importlib.util.find_spec("llama_cpp") else "openai"
    if importlib.util.find_spec("vllm") is None:
        assert first == expected


def test_llama_cpp_missing_gguf_is_a_model_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(ModelError, match="GGUF file not found"):
        make_backend(TranslatorSettings(backend="llama_cpp", model=str(tmp_path / "absent.gguf")), tmp_path)


def test_bundled_model_not_pulled_is_a_model_error(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(ModelError, match="not installed"):
        make_backend(TranslatorSettings(backend="llama_cpp"), tmp_path)


def test_protocol_is_exported() -> None:
    assert backends.__all__[0] == "LLMBackend"
