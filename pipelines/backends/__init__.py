"""LLM backends for the translator: one small protocol and a factory.

Every concrete backend imports its heavy library (llama-cpp-python, openai, vLLM) inside its
constructor, so importing this package costs nothing and never imports Ray or torch.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from configs.settings import TranslatorSettings

logger = logging.getLogger(__name__)

Message = dict[str, str]


@runtime_checkable
class LLMBackend(Protocol):
    """A chat model that answers one conversation at a time."""

    name: str
    """Shown in reports, e.g. ``llama_cpp:qwen2.5-coder-1.5b-instruct-q4_k_m.gguf``."""

    def complete(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        """Return the assistant's text for ``messages`` (OpenAI chat format).

        With ``json_schema`` the backend constrains (or at least asks for) JSON matching it.
        ``max_tokens`` caps the generated tokens; a truncated answer is returned as is.
        Raises ``pipelines.errors.BackendUnavailable`` when the model or server cannot be reached
        at all (after the backend's own retries); other exceptions concern this one request.
        """
        ...


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _cuda_available() -> bool:
    if not _importable("torch"):
        return False
    import torch  # heavy; only reached when vLLM is installed

    return bool(torch.cuda.is_available())


@functools.lru_cache(maxsize=1)
def choose_backend() -> str:
    """What ``backend = "auto"`` means on this machine; logged once per process."""
    if _importable("vllm") and _cuda_available():
        choice = "vllm"
    elif _importable("llama_cpp"):
        choice = "llama_cpp"
    else:
        choice = "openai"
    logger.info("translator backend auto -> %s", choice)
    return choice


def make_backend(settings: TranslatorSettings, models_dir: Path) -> LLMBackend:
    """Build the backend named by ``settings.backend`` ("auto" picks vllm, llama_cpp, then openai).

    Raises BackendUnavailable when the chosen backend's library is missing, ModelError when its
    model cannot be loaded.
    """
    kind = choose_backend() if settings.backend == "auto" else settings.backend
    if kind == "llama_cpp":
        from pipelines.backends.llama_cpp import LlamaCppBackend

        return LlamaCppBackend(settings, models_dir)
    if kind == "openai":
        from pipelines.backends.openai_compat import OpenAIBackend

        return OpenAIBackend(settings)
    if kind == "vllm":
        from pipelines.backends.vllm import VLLMBackend

        return VLLMBackend(settings, models_dir)
    raise ValueError(f"unknown translator backend {settings.backend!r}")


__all__ = ["LLMBackend", "Message", "choose_backend", "make_backend"]
