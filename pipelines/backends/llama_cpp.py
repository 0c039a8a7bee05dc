"""In-process llama.cpp (llama-cpp-python) backend: the CPU default with the bundled GGUF."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.backends import Message
from pipelines.backends.llama_cpu import load_llama
from pipelines.errors import BackendUnavailable, ModelError
from pipelines.models import resolve

if TYPE_CHECKING:
    from configs.settings import TranslatorSettings

logger = logging.getLogger(__name__)


def _is_local(model: str) -> bool:
    return model.endswith(".gguf") or Path(model).exists()


class LlamaCppBackend:
    """A GGUF model loaded once; ``complete`` is serialised because a ``Llama`` is not thread-safe.

    The model setting is ``bundled:<name>``, a ``.gguf`` path or a Hugging Face repo id (then
    ``settings.gguf_file`` picks the file, downloaded by llama-cpp-python).
    """

    def __init__(self, settings: TranslatorSettings, models_dir: Path) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise BackendUnavailable("llama-cpp-python is not installed; run `make llama` (or pip install it)")
        model = resolve(settings.model, models_dir)
        options: dict[str, Any] = {
            "n_ctx": settings.n_ctx,
            "n_threads": settings.n_threads or os.cpu_count() or 1,
            "verbose": False,
        }
        try:
            if _is_local(model):
                if not Path(model).is_file():
                    raise ModelError(f"GGUF file not found: {model}")
                self._llm = load_llama(settings.extra_buffers, model_path=model, **options)
            else:
                self._llm = load_llama(settings.extra_buffers, repo_id=model, filename=settings.gguf_file, **options)
        except (ModelError, BackendUnavailable):
            raise
        except Exception as exc:  # llama-cpp raises ValueError/RuntimeError/HF errors on a bad model
            raise ModelError(f"cannot load GGUF model {model!r}: {exc}") from exc
        self._temperature = settings.temperature
        self._lock = threading.Lock()
        self.name = f"llama_cpp:{Path(model).name if _is_local(model) else model}"
        logger.info("loaded %s (n_ctx=%d, n_threads=%d)", self.name, options["n_ctx"], options["n_threads"])

    def complete(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        """Chat completion; ``json_schema`` becomes a grammar, so the output always parses as it."""
        response_format = {"type": "json_object", "schema": json_schema} if json_schema is not None else None
        with self._lock:
            out: Any = self._llm.create_chat_completion(
                messages=messages,
                response_format=response_format,
                max_tokens=max_tokens,
                temperature=self._temperature,
            )
        return str(out["choices"][0]["message"].get("content") or "")
