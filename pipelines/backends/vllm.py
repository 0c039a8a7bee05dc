"""In-process vLLM backend for GPU machines (optional extra: ``pip install 'videotranslator[gpu]'``)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.backends import Message
from pipelines.errors import BackendUnavailable, ModelError
from pipelines.models import resolve

if TYPE_CHECKING:
    from configs.settings import TranslatorSettings

logger = logging.getLogger(__name__)

INSTALL_HINT = "vLLM is not installed; pip install 'videotranslator[gpu]'"


def _structured(vllm_sampling: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """SamplingParams kwargs for JSON-schema decoding; the API was renamed across vLLM versions."""
    if hasattr(vllm_sampling, "StructuredOutputsParams"):
        return {"structured_outputs": vllm_sampling.StructuredOutputsParams(json=schema)}
    return {"guided_decoding": vllm_sampling.GuidedDecodingParams(json=schema)}


class VLLMBackend:
    """A vLLM ``LLM`` engine in this process; ``settings.model`` is a HF repo id or local folder."""

    def __init__(self, settings: TranslatorSettings, models_dir: Path) -> None:
        self._settings = settings
        self._model = resolve(settings.model, models_dir)
        self._llm: Any = None
        self._sampling: Any = None
        self._lock = threading.Lock()
        self.name = f"vllm:{self._model}"
        self.start()

    def start(self) -> None:
        """Import vLLM and load the model; BackendUnavailable without vLLM, ModelError on a bad model."""
        if self._llm is not None:
            return
        try:
            import vllm
            import vllm.sampling_params as sampling
        except ImportError as exc:
            raise BackendUnavailable(INSTALL_HINT) from exc
        try:
            self._llm = vllm.LLM(model=self._model, max_model_len=self._settings.n_ctx)
        except Exception as exc:  # vLLM raises many kinds on a bad model or out of memory
            raise ModelError(f"vLLM cannot load {self._model!r}: {exc}") from exc
        self._sampling = sampling
        logger.info("loaded %s", self.name)

    def complete(
        self, messages: list[Message], *, json_schema: dict[str, Any] | None = None, max_tokens: int = 1024
    ) -> str:
        """Chat completion with guided JSON decoding when ``json_schema`` is given."""
        extra = _structured(self._sampling, json_schema) if json_schema is not None else {}
        params = self._sampling.SamplingParams(temperature=self._settings.temperature, max_tokens=max_tokens, **extra)
        with self._lock:
            outputs = self._llm.chat(messages, params, use_tqdm=False)
        return str(outputs[0].outputs[0].text)
