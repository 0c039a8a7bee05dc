"""What the routers call: the job service, storage, and ``InferenceService`` for the /v1 endpoints.

The model deployments are reached through ``DeploymentClient``s, which hide whether one is a Ray Serve
deployment handle (in the Serve app) or a deployment class instance in this process (unit tests,
``uvicorn`` without Ray). Routers stay thin; formatting (json, text, srt, vtt, verbose_json, wav, mp3)
lives here.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.languages import LANGUAGES, normalize_language
from pipelines.schema import Transcript
from serve_app.api.errors import ModelNotFound, RequestTooLarge

if TYPE_CHECKING:
    from configs.settings import Settings
    from serve_app.jobs import JobService, Storage

logger = logging.getLogger(__name__)

ASR_MODEL_ALIASES = frozenset({"", "default", "whisper-1", "none"})
TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
READY_TIMEOUT_S = 3.0


def _is_handle(target: Any) -> bool:
    return callable(getattr(target, "remote", None)) and callable(getattr(target, "options", None))


class DeploymentClient:
    """Calls a deployment's methods: ``await handle.method.remote(...)`` for a deployment handle, or the
    instance's method in a worker thread. ``factory`` builds the instance on first use (local mode)."""

    def __init__(self, target: Any = None, *, factory: Callable[[], Any] | None = None) -> None:
        if target is None and factory is None:
            raise ValueError("give a target or a factory")
        self._target, self._factory = target, factory
        self._lock = asyncio.Lock()

    async def target(self) -> Any:
        if self._target is None:
            async with self._lock:
                if self._target is None:
                    assert self._factory is not None
                    self._target = await asyncio.to_thread(self._factory)
        return self._target

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        target = await self.target()
        if _is_handle(target):
            return await getattr(target, method).remote(*args, **kwargs)
        return await asyncio.to_thread(getattr(target, method), *args, **kwargs)


@dataclass
class Services:
    """Everything the routers need; built by ``build_app`` (handles) or ``local`` (in-process stages)."""

    settings: Settings
    jobs: JobService
    storage: Storage
    asr: DeploymentClient
    translator: DeploymentClient
    tts: DeploymentClient
    job_runner: DeploymentClient | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def inference(self) -> InferenceService:
        return InferenceService(self.settings, self.asr, self.translator, self.tts)

    async def readiness(self) -> dict[str, bool]:
        """Each component → ready. A stage that does not answer within READY_TIMEOUT_S is not ready."""
        parts = {"asr": self.asr, "translator": self.translator, "tts": self.tts}
        if self.job_runner is not None:
            parts["job_runner"] = self.job_runner

        async def probe(client: DeploymentClient) -> bool:
            try:
                return bool(await asyncio.wait_for(client.call("ready"), READY_TIMEOUT_S))
            except Exception:  # noqa: BLE001  (not deployed yet, starting, dead, timed out: all mean "not ready")
                return False

        results = await asyncio.gather(*(probe(c) for c in parts.values()))
        return dict(zip(parts, results))

    @classmethod
    def local(cls, settings: Settings) -> Services:
        """In-process services: the job store and storage from ``settings``, stages built on first use.
        No job worker runs (start a ``JobWorker`` yourself, or use the Serve app)."""
        from serve_app.deployments import ASRDeployment, TranslatorDeployment, TTSDeployment
        from serve_app.jobs.wiring import build_job_service

        jobs = build_job_service(settings)
        return cls(
            settings=settings,
            jobs=jobs,
            storage=jobs.storage,
            asr=DeploymentClient(factory=lambda: ASRDeployment(settings)),
            translator=DeploymentClient(factory=lambda: TranslatorDeployment(settings)),
            tts=DeploymentClient(factory=lambda: TTSDeployment(settings)),
        )


# ----------------------------------------------------------------------------- formatting (pure)


def language_label(code: str) -> str:
    """OpenAI names languages in lower-case English ("english")."""
    return LANGUAGES.get(code, code).lower()


def transcript_text(transcript: Transcript) -> str:
    return " ".join(s.text.strip() for s in transcript.segments if s.text.strip())


def format_transcript(transcript: Transcript, response_format: str, *, task: str = "transcribe") -> tuple[Any, str]:
    """A transcript as OpenAI's ``response_format``: returns (body, media type); a dict body is JSON."""
    from pipelines.cues import transcript_cues
    from pipelines.subtitles import to_srt, to_vtt

    text = transcript_text(transcript)
    if response_format == "json":
        return {"text": text}, "application/json"
    if response_format == "text":
        return text + "\n", "text/plain; charset=utf-8"
    if response_format in ("srt", "vtt"):
        _, cues = transcript_cues(transcript)  # the runner's segment stage, as in the CLI's and the jobs' subtitles
        if response_format == "srt":
            return to_srt(cues), "application/x-subrip; charset=utf-8"
        return to_vtt(cues), "text/vtt; charset=utf-8"
    if response_format == "verbose_json":
        segments = [
            {"id": i, "start": s.start_s, "end": s.end_s, "text": s.text} for i, s in enumerate(transcript.segments)
        ]
        words = [
            {"word": w.text.strip(), "start": w.start_s, "end": w.end_s} for s in transcript.segments for w in s.words
        ]
        language = "english" if task == "translate" else language_label(transcript.language)
        body = {
            "task": task,
            "language": language,
            "duration": transcript.duration_s,
            "text": text,
            "segments": segments,
            "words": words,
        }
        if task == "translate":
            body["source_language"] = language_label(transcript.language)
        return body, "application/json"
    raise ValueError(f"unknown response_format {response_format!r}")


def encode_audio(samples: np.ndarray, sample_rate_hz: int, response_format: str) -> tuple[bytes, str]:
    """float32 mono samples → WAV (16-bit PCM) or MP3 bytes and their media type."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 1.0), sample_rate_hz, format="WAV", subtype="PCM_16")
    wav = buf.getvalue()
    if response_format == "wav":
        return wav, "audio/wav"
    if response_format == "mp3":
        from pipelines.media import run_ffmpeg

        mp3 = run_ffmpeg(["-f", "wav", "-i", "pipe:0", "-c:a", "libmp3lame", "-q:a", "4", "-f", "mp3", "pipe:1"],
                         input_bytes=wav, what="mp3 encoding")  # fmt: skip
        return mp3, "audio/mpeg"
    raise ValueError(f"unknown response_format {response_format!r}")


# ----------------------------------------------------------------------------- /v1


class InferenceService:
    """The /v1 endpoints' logic over the three stage clients. Raises VTError subclasses."""

    def __init__(
        self, settings: Settings, asr: DeploymentClient, translator: DeploymentClient, tts: DeploymentClient
    ) -> None:
        self.settings = settings
        self.limits = settings.service
        self.asr, self.translator, self.tts = asr, translator, tts

    def check_asr_model(self, model: str | None) -> None:
        """``default``, ``whisper-1``, none, or the configured model's name; else ModelNotFound."""
        name = (model or "").strip()
        if name.lower() in ASR_MODEL_ALIASES or name == self.settings.asr.model:
            return
        raise ModelNotFound(f"unknown model {name!r}; use 'whisper-1', 'default' or {self.settings.asr.model!r}")

    async def transcribe(
        self, audio: bytes, *, language: str | None, response_format: str, task: str = "transcribe"
    ) -> tuple[Any, str]:
        """Speech → text in ``response_format`` (task "translate": into English). Returns (body, media type)."""
        lang = normalize_language(language) if language else None
        method = "translate_to_english" if task == "translate" else "transcribe"
        transcript: Transcript = await self.asr.call(method, audio, lang)
        return format_transcript(transcript, response_format, task=task)

    async def translate_texts(
        self, texts: list[str], *, source_language: str, target_language: str, glossary: Mapping[str, str] | None
    ) -> list[str]:
        """Translations of ``texts`` in the same order. Raises RequestTooLarge past the configured limits."""
        if len(texts) > self.limits.max_text_items:
            raise RequestTooLarge(f"too many texts: {len(texts)} (at most {self.limits.max_text_items})")
        chars = sum(len(t) for t in texts) + sum(len(k) + len(v) for k, v in (glossary or {}).items())
        if chars > self.limits.max_text_chars:
            raise RequestTooLarge(f"too much text: {chars} characters (at most {self.limits.max_text_chars})")
        source, target = normalize_language(source_language), normalize_language(target_language)
        if not texts:
            return []
        result: list[str] = await self.translator.call("translate_texts", texts, source, target, dict(glossary or {}))
        return result

    async def speech(
        self, text: str, *, voice: str | None, response_format: str, language: str | None = None
    ) -> tuple[bytes, str]:
        """Text → audio bytes (wav or mp3) and the media type. ``voice``/``language``: see
        ``TTSDeployment.resolve_voice``. Raises InvalidVoice, UnknownLanguage, RequestTooLarge."""
        if len(text) > self.limits.max_speech_chars:
            raise RequestTooLarge(
                f"the input is too long: {len(text)} characters (at most {self.limits.max_speech_chars})"
            )
        samples, rate = await self.tts.call("speech", text, voice, language)
        return await asyncio.to_thread(encode_audio, samples, rate, response_format)

    async def voices(self, language: str | None = None) -> dict[str, Any]:
        """The voice catalog as the TTS deployment sees it: ``{"voices": [...], "defaults": {lang: id}}`` (see
        ``TTSDeployment.voices``). Raises UnknownLanguage."""
        lang = normalize_language(language) if language else None
        result: dict[str, Any] = await self.tts.call("voices", lang)
        for row in result["voices"]:
            row.setdefault("object", "voice")
        return result

    def models(self) -> list[dict[str, Any]]:
        """OpenAI's model list, plus what each model does."""
        s = self.settings

        def entry(model_id: str, task: str) -> dict[str, Any]:
            return {"id": model_id, "object": "model", "created": 0, "owned_by": "videotranslator", "task": task}

        items = [entry("whisper-1", "transcription"), entry(s.asr.model, "transcription")]
        items.append(entry(s.translator.model, "translation"))
        items += [entry(voice, "speech") for voice in dict.fromkeys(s.tts.voices.values())]
        return items
