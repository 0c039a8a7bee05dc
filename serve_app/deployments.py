"""The Serve deployments: plain classes wrapping the pipeline stages unchanged, and handle adapters.

Nothing here is decorated. ``serve_app.app.build_app`` wraps the classes with
``serve.deployment(cls, **options).bind(...)`` (Ray Serve LLM's builder pattern), so unit tests
construct them directly, with real or fake stages and without Ray.

* ``ASRDeployment``, ``TranslatorDeployment``, ``TTSDeployment``: one model each; they scale separately.
* ``HandleASR``, ``HandleTranslator``, ``HandleTTS``: the pipeline's stage protocols over deployment
  handles, so ``Pipeline(settings, asr=HandleASR(h), ...)`` runs a job through the deployments.
* ``JobRunner``: hosts the ``JobWorker`` (one replica); jobs run there as background threads, never
  inside an HTTP request.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from configs.settings import Settings
from pipelines.errors import InvalidMedia, UnknownLanguage
from pipelines.languages import normalize_language
from pipelines.schema import Clip, Sentence, Transcript, Translation

if TYPE_CHECKING:
    from pipelines.runner import Pipeline

logger = logging.getLogger(__name__)

ASR_SAMPLE_RATE_HZ = 16000
# OpenAI's voice names: clients of /v1/audio/speech send these; they mean the default English voice.
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
)

Audio = bytes | str | np.ndarray


def settings_from(value: Settings | Mapping[str, Any] | None) -> Settings:
    """Deployments receive settings as a plain dict (it crosses process boundaries); tests pass Settings."""
    if isinstance(value, Settings):
        return value
    return Settings(**dict(value or {}))


def decode_audio_bytes(data: bytes) -> np.ndarray:
    """An encoded audio/video file (any format PyAV reads) → float32 mono 16 kHz samples.

    Raises InvalidMedia when it cannot be decoded or has no audio.
    """
    from faster_whisper.audio import decode_audio

    try:
        samples = decode_audio(io.BytesIO(data), sampling_rate=ASR_SAMPLE_RATE_HZ)
    except Exception as exc:  # PyAV raises many error types for bad input
        raise InvalidMedia(f"not a readable audio file ({type(exc).__name__})") from exc
    return np.asarray(samples, dtype=np.float32)


def _as_samples(audio: Audio) -> str | np.ndarray:
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return decode_audio_bytes(bytes(audio))
    return audio


class ASRDeployment:
    """faster-whisper behind a deployment. ``stage`` may be injected (a ``Recognizer``); else ``WhisperASR``."""

    def __init__(self, settings: Settings | Mapping[str, Any] | None = None, *, stage: Any = None) -> None:
        self.settings = settings_from(settings)
        if stage is None:
            from pipelines.asr import WhisperASR

            stage = WhisperASR(self.settings.asr, self.settings.storage.models_dir)
        self.stage = stage
        self.name: str = getattr(stage, "name", "asr")
        self._translate_stage: Any = None

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        """Transcribe an encoded file (bytes), float32 16 kHz samples or a local path. Raises InvalidMedia,
        UnknownLanguage, ModelError."""
        lang = normalize_language(language) if language else None
        return self.stage(_as_samples(audio), language=lang)  # type: ignore[no-any-return]

    def translate_to_english(self, audio: Audio, language: str | None = None) -> Transcript:
        """Whisper's own ``task="translate"``: speech in any language → English text, in one pass (better
        fidelity than transcribe-then-LLM for the OpenAI /v1/audio/translations endpoint). The returned
        Transcript's ``language`` is the detected (or given) source language."""
        if self._translate_stage is None:
            model = getattr(self.stage, "model", None)
            if model is None:
                raise InvalidMedia("this ASR stage cannot translate")  # a fake stage without a model
            from pipelines.asr import WhisperASR

            self._translate_stage = WhisperASR(
                self.settings.asr, self.settings.storage.models_dir, model=model, task="translate"
            )
        lang = normalize_language(language) if language else None
        return self._translate_stage(_as_samples(audio), language=lang)  # type: ignore[no-any-return]

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.settings.asr.model}

    def ready(self) -> bool:
        return True


class TranslatorDeployment:
    """The LLM translator. With ``llm_handle`` (a Ray Serve LLM deployment) it calls that through
    ``ServeLLMBackend``; else it builds the configured backend (llama.cpp on CPU). ``stage`` may be injected."""

    def __init__(
        self,
        settings: Settings | Mapping[str, Any] | None = None,
        llm_handle: Any = None,
        *,
        llm_model_id: str | None = None,
        stage: Any = None,
    ) -> None:
        self.settings = settings_from(settings)
        if stage is None:
            from pipelines.translate import LLMTranslator, make_translator

            if llm_handle is not None:
                from serve_app.llm import ServeLLMBackend

                backend = ServeLLMBackend(llm_handle, model_id=llm_model_id or self.settings.translator.model)
                stage = LLMTranslator(self.settings.translator, backend)
            else:
                stage = make_translator(self.settings.translator, self.settings.storage.models_dir)
        self.stage = stage
        self.name: str = getattr(stage, "name", "translator")

    def translate(
        self,
        sentences: Sequence[Sentence],
        source_language: str,
        target_language: str,
        glossary: Mapping[str, str] | None = None,
    ) -> list[Translation]:
        """Sentences → translations, id for id (see ``pipelines.translate.Translator``)."""
        return self.stage.translate(  # type: ignore[no-any-return]
            sentences, source_language=source_language, target_language=target_language, glossary=glossary
        )

    def translate_texts(
        self, texts: list[str], source_language: str, target_language: str, glossary: Mapping[str, str] | None = None
    ) -> list[str]:
        """Plain strings → translations in the same order (a failed line comes back unchanged)."""
        sentences = [Sentence(id=i, start_s=0.0, end_s=0.0, text=t) for i, t in enumerate(texts)]
        result = self.translate(sentences, source_language, target_language, glossary)
        return [t.text for t in result]

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.settings.translator.model}

    def ready(self) -> bool:
        return True


class TTSDeployment:
    """Text to speech. ``stage`` may be injected; else ``TTSStage`` with the clip cache under storage.cache_dir."""

    def __init__(self, settings: Settings | Mapping[str, Any] | None = None, *, stage: Any = None) -> None:
        self.settings = settings_from(settings)
        if stage is None:
            from pipelines.tts import TTSStage

            s = self.settings
            stage = TTSStage(s.tts, s.storage.models_dir, cache_dir=s.storage.cache_dir / "tts")
        self.stage = stage
        self._lock = threading.Lock()  # TTSStage keeps per-call state (synthesized_count, its synth cache)

    def voice_for(self, language: str) -> str:
        """The voice spec for a language. Raises UnknownLanguage."""
        return self.stage.voice_for(language)  # type: ignore[no-any-return]

    def synthesize(self, translations: Sequence[Translation], language: str) -> tuple[list[Clip], int]:
        """One Clip per translation, and how many were synthesised (not served from the clip cache)."""
        with self._lock:
            clips = self.stage(translations, language)
            return clips, int(getattr(self.stage, "synthesized_count", len(clips)))

    def resolve_voice(self, voice: str | None) -> str:
        """An API ``voice`` → a voice spec: a configured spec or its short name (``en_US-joe-medium``),
        ``espeak:<voice>``, an OpenAI voice name (the English voice), or a language code. Raises UnknownLanguage."""
        raw = (voice or "").strip()
        configured: dict[str, str] = dict(getattr(self.stage, "settings", self.settings.tts).voices)
        if not raw or raw.lower() in OPENAI_VOICES or raw.lower() == "default":
            return self.voice_for("en")
        for spec in configured.values():
            if raw == spec or raw == spec.rsplit(":", 1)[-1]:
                return spec
        if raw.startswith("espeak:"):
            from pipelines.tts import espeak_voices

            if raw[len("espeak:") :].lower() in espeak_voices():
                return raw
            raise UnknownLanguage(f"unknown espeak-ng voice {raw!r}")
        if ":" in raw or "/" in raw:
            raise UnknownLanguage(f"unknown voice {raw!r}; use a language code or a configured voice")
        return self.voice_for(normalize_language(raw))

    def speech(self, text: str, voice: str | None = None) -> tuple[np.ndarray, int]:
        """Speak ``text`` with ``voice`` (see ``resolve_voice``): float32 mono samples and their rate (Hz)."""
        spec = self.resolve_voice(voice)
        with self._lock:
            synth = self.stage.synthesizer(spec)
            samples = np.asarray(synth.synthesize(text), dtype=np.float32)
            return samples, int(synth.sample_rate_hz)

    def info(self) -> dict[str, Any]:
        return {"name": "tts", "voices": dict(self.settings.tts.voices)}

    def ready(self) -> bool:
        return True


# ----------------------------------------------------------------------------- handle adapters


def _wait(response: Any) -> Any:
    """A DeploymentResponse's result (called from worker threads, never on an event loop)."""
    return response.result()


# A replica that dies under a call (OOM, a crash, ray.kill) is replaced by Serve; the stage calls are pure
# functions of their arguments, so the adapters send the call again (to the new replica once it is up).
REPLICA_RETRIES = 3
REPLICA_RETRY_BACKOFF_S = 1.0


def _replica_died(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayActorError, RayTaskError
        from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError
    except ImportError:  # no Ray: handles are fakes, nothing to retry
        return False
    if isinstance(exc, RayTaskError):
        return isinstance(getattr(exc, "cause", None), RayActorError)
    return isinstance(exc, (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError))


def _call(method: Any, *args: Any) -> Any:
    """``method.remote(*args)``'s result, sent again (up to REPLICA_RETRIES times, backing off) when the
    replica died under it. Any other error propagates at once."""
    for attempt in range(REPLICA_RETRIES + 1):
        try:
            return _wait(method.remote(*args))
        except Exception as exc:
            if attempt == REPLICA_RETRIES or not _replica_died(exc):
                raise
            delay = REPLICA_RETRY_BACKOFF_S * 2**attempt
            logger.warning("replica died under a stage call (%s); retrying in %.0f s", type(exc).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


class _HandleStage:
    """A pipeline stage over a deployment handle; ``name`` is asked of the replica once."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = str(_call(self.handle.info)["name"])
        return self._name


class HandleASR(_HandleStage):
    """The pipeline's ``Recognizer`` over an ASRDeployment handle (the audio travels as samples, so the
    replica may run on another node)."""

    def __call__(self, audio: str | Path | np.ndarray, *, language: str | None = None) -> Transcript:
        if isinstance(audio, (str, Path)):
            from pipelines.media import read_wav

            samples, rate = read_wav(audio)  # the runner hands over its 16 kHz mono wav
            if rate != ASR_SAMPLE_RATE_HZ:
                raise InvalidMedia(f"expected {ASR_SAMPLE_RATE_HZ} Hz audio, got {rate} Hz")
            audio = samples.reshape(-1)
        return _call(self.handle.transcribe, audio, language)  # type: ignore[no-any-return]


class HandleTranslator(_HandleStage):
    """The pipeline's ``Translator`` over a TranslatorDeployment handle."""

    def translate(
        self,
        sentences: Sequence[Sentence],
        *,
        source_language: str,
        target_language: str,
        glossary: Mapping[str, str] | None = None,
    ) -> list[Translation]:
        args = (list(sentences), source_language, target_language, dict(glossary or {}))
        return _call(self.handle.translate, *args)  # type: ignore[no-any-return]


class HandleTTS:
    """The pipeline's TTS stage over a TTSDeployment handle. ``synthesized_count`` is per calling thread."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._local = threading.local()

    @property
    def synthesized_count(self) -> int:
        return int(getattr(self._local, "count", 0))

    def voice_for(self, language: str) -> str:
        return _call(self.handle.voice_for, language)  # type: ignore[no-any-return]

    def __call__(self, translations: Sequence[Translation], language: str) -> list[Clip]:
        clips, count = _call(self.handle.synthesize, list(translations), language)
        self._local.count = count
        return clips  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- the job runner


class JobRunner:
    """Hosts the ``JobWorker`` next to the model deployments (run it with ONE replica per job store).

    The worker's threads claim queued jobs from the store and run ``Pipeline`` with the handle adapters,
    so every stage call goes to its own autoscaled deployment. ``pipeline_factory`` may be injected (tests).
    """

    def __init__(
        self,
        settings: Settings | Mapping[str, Any] | None = None,
        asr: Any = None,
        translator: Any = None,
        tts: Any = None,
        *,
        pipeline_factory: Any = None,
        poll_s: float = 0.5,
    ) -> None:
        from serve_app.jobs import JobService, JobWorker, LocalStorage, make_job_store
        from serve_app.jobs.retention import start_retention

        self.settings = s = settings_from(settings)
        self.store = make_job_store(s.service.job_store_url)
        self.storage = LocalStorage(s.storage.root, quota_bytes=s.storage.quota_bytes)
        self.service = JobService(
            self.store, self.storage, max_queued_jobs=s.service.max_queued_jobs, retry_after_s=s.service.retry_after_s
        )
        handles = (asr, translator, tts)
        self.worker = JobWorker(
            self.service,
            pipeline_factory or (lambda: self._pipeline(*handles)),
            max_running_jobs=s.service.max_running_jobs,
            poll_s=poll_s,
            lease_s=s.service.job_lease_s,
        )
        self.worker.start()  # requeues jobs whose lease expired (a dead process); they resume from the stage cache
        self.retention = start_retention(s, self.store, self.storage)

    def _pipeline(self, asr: Any, translator: Any, tts: Any) -> Pipeline:
        from pipelines.runner import Pipeline

        return Pipeline(
            self.settings,
            asr=HandleASR(asr) if asr is not None else None,
            translator=HandleTranslator(translator) if translator is not None else None,
            tts=HandleTTS(tts) if tts is not None else None,
        )

    def ready(self) -> bool:
        return self.worker.running

    def shutdown(self) -> None:
        """Stop taking jobs. A job still running is put back in the queue (the model deployments are going
        away with this app), so the next start resumes it from its last finished stage."""
        retention = getattr(self, "retention", None)
        if retention is not None:
            retention.stop(timeout=1.0)
        # This replica's jobs only (others may share the store); the threads drop them at their next stage.
        self.worker.stop(timeout=0, requeue=True)
        self.worker.stop(timeout=5.0)

    def __del__(self) -> None:  # Serve calls this when the replica shuts down gracefully
        try:
            self.shutdown()
        except Exception:  # never raise from a destructor
            logger.exception("job runner shutdown failed")
