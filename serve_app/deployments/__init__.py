"""The Serve deployments: plain classes, wrapped by ``serve_app.app.build_app`` and nowhere else.

Nothing here is decorated: ``build_app`` wraps the classes with ``serve.deployment(cls, **options).bind(...)``
(Ray Serve LLM's builder pattern), so unit tests construct them directly, with real or fake stages and
without Ray. One module per seam:

* ``model_deployments``: ``ASRDeployment``, ``TranslatorDeployment``, ``TTSDeployment``, ``SeparatorDeployment``,
  ``DiarizerDeployment``, one model each; they scale separately.
* ``adapters``: ``HandleASR``, ``HandleTranslator``, ``HandleTTS``, ``HandleSeparator``, ``HandleDiarizer``, the
  pipeline's stage protocols over deployment handles, so ``Pipeline(settings, asr=HandleASR(h), ...)`` runs a job
  through the deployments.
* ``job_runner``: ``JobRunner`` hosts the ``JobWorker`` (one replica).
"""

from __future__ import annotations

from serve_app.deployments.adapters import HandleASR, HandleDiarizer, HandleSeparator, HandleTranslator, HandleTTS
from serve_app.deployments.job_runner import JobRunner
from serve_app.deployments.model_deployments import (
    ASR_SAMPLE_RATE_HZ,
    OPENAI_VOICES,
    ASRDeployment,
    DiarizerDeployment,
    LLMTranslatorDeployment,
    SeparatorDeployment,
    TranslatorDeployment,
    TTSDeployment,
    decode_audio_bytes,
    settings_from,
)

__all__ = [
    "ASR_SAMPLE_RATE_HZ",
    "OPENAI_VOICES",
    "ASRDeployment",
    "DiarizerDeployment",
    "HandleASR",
    "HandleDiarizer",
    "HandleSeparator",
    "HandleTTS",
    "HandleTranslator",
    "JobRunner",
    "LLMTranslatorDeployment",
    "SeparatorDeployment",
    "TTSDeployment",
    "TranslatorDeployment",
    "decode_audio_bytes",
    "settings_from",
]
