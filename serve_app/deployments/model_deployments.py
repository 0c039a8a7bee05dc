"""The model deployments: plain classes wrapping the pipeline stages unchanged, one model each.

``ASRDeployment`` (faster-whisper), ``TranslatorDeployment`` (the LLM; ``LLMTranslatorDeployment`` over a Ray
Serve LLM deployment), ``TTSDeployment`` (piper/espeak-ng), ``SeparatorDeployment`` (Spleeter on onnxruntime)
and ``DiarizerDeployment`` (d-vectors and clustering): they scale separately. ``stage`` may be injected (tests);
else each builds the configured stage in its replica.
"""

from __future__ import annotations

import asyncio
import functools
import re
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from configs.settings import Settings
from pipelines.batch.chunking import VAD_WINDOW_S
from pipelines.errors import InvalidMedia, InvalidVoice, VTError
from pipelines.languages import normalize_language
from pipelines.schema import Clip, Sentence, Transcript, Translation

if TYPE_CHECKING:
    from configs.settings import DiarizeSettings
    from pipelines.diarize import Diarization

ASR_SAMPLE_RATE_HZ = 16000
# OpenAI's voice names: clients of /v1/audio/speech send these; they mean the default voice of the request's
# ``language`` (English without one).
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage", "shimmer", "verse"}
)

Audio = bytes | str | np.ndarray


def settings_from(value: Settings | Mapping[str, Any] | None) -> Settings:
    """Deployments receive settings as a plain dict (it crosses process boundaries); tests pass Settings."""
    if isinstance(value, Settings):
        return value
    return Settings(**dict(value or {}))


def decode_audio_bytes(data: bytes, folder: Path, max_duration_s: float | None) -> Path:
    """An encoded audio/video file (any format ffmpeg reads) → a 16 kHz mono WAV in ``folder``, decoded by ffmpeg
    to disk, so memory does not grow with the length (25 MiB of Opus can hold hours).

    The length is checked before anything is decoded (the container's claim) and on what is decoded (ffmpeg
    stops a second past ``max_duration_s``). Raises InvalidMedia (not decodable, no audio), MediaTooLong.
    """
    from pipelines import media

    src = folder / "audio"
    src.write_bytes(data)
    try:
        info = media.probe(src)
    except InvalidMedia as exc:  # ffprobe's reason, without the temp file's name: "(Invalid data found ...)"
        found = re.search(r"\(([^()]*)\)$", str(exc))
        raise InvalidMedia(f"not a readable audio file ({found.group(1) if found else exc})", detail=exc.detail) from exc
    media.check_duration("the audio", info.duration_s, max_duration_s)
    if not info.has_audio:
        raise InvalidMedia("not a readable audio file (it has no audio stream)")
    return media.extract_audio(info, folder / "audio16k.wav", max_duration_s=max_duration_s)


def _transcribe(stage: Any, audio: Audio, language: str | None, max_duration_s: float, window_s: float) -> Transcript:
    """``stage`` over bytes (decoded to a WAV, then sent whole or, past ``window_s`` seconds, in chunks read one
    at a time: ``chunking.transcribe_file``), samples or a local path."""
    if isinstance(audio, (bytes, bytearray, memoryview)):
        from pipelines.batch.chunking import transcribe_file

        with tempfile.TemporaryDirectory(prefix="vt-v1-audio-") as tmp:
            wav = decode_audio_bytes(bytes(audio), Path(tmp), max_duration_s)
            return transcribe_file(stage, wav, language=language, max_s=window_s)
    return stage(audio, language=language)  # type: ignore[no-any-return]


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
        self.window_s = VAD_WINDOW_S  # encoded audio longer than this is transcribed in chunks

    def transcribe(self, audio: Audio, language: str | None = None) -> Transcript:
        """Transcribe an encoded file (bytes), float32 16 kHz samples or a local path. Raises InvalidMedia,
        UnknownLanguage, ModelError."""
        lang = normalize_language(language) if language else None
        return _transcribe(self.stage, audio, lang, self.settings.MAX_DURATION, self.window_s)

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
        return _transcribe(self._translate_stage, audio, lang, self.settings.MAX_DURATION, self.window_s)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.settings.asr.model}

    def ready(self) -> bool:
        return True


class TranslatorDeployment:
    """The LLM translator: builds the configured backend (llama.cpp on CPU) in its replica; ``stage`` may be
    injected. Over a Ray Serve LLM deployment use ``LLMTranslatorDeployment`` (async: it awaits that handle)."""

    def __init__(self, settings: Settings | Mapping[str, Any] | None = None, *, stage: Any = None) -> None:
        self.settings = settings_from(settings)
        if stage is None:
            from pipelines.translate import make_translator

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

    def shorten(self, text: str, target_language: str, max_chars: int) -> str | None:
        """A shorter rendering of ``text`` (about ``max_chars`` characters) in ``target_language``, or None when
        the stage cannot make one (see ``pipelines.translate.LLMTranslator.shorten``); the runner asks for it when
        a dubbed line overflows its slot."""
        return self.stage.shorten(  # type: ignore[no-any-return]
            text, target_language=target_language, max_chars=max_chars
        )

    def translate_texts(
        self, texts: list[str], source_language: str, target_language: str, glossary: Mapping[str, str] | None = None
    ) -> list[str]:
        """Plain strings → translations in the same order (a failed line comes back unchanged); see
        ``pipelines.translate.LLMTranslator.translate_texts``."""
        return self.stage.translate_texts(  # type: ignore[no-any-return]
            texts, source_language, target_language, glossary
        )

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.settings.translator.model}

    def ready(self) -> bool:
        return True


def _awaited(name: str) -> Any:
    """An async method running ``TranslatorDeployment.<name>`` in a worker thread (see LLMTranslatorDeployment)."""

    async def method(self: LLMTranslatorDeployment, *args: Any, **kwargs: Any) -> Any:
        return await self._in_thread(name, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``TranslatorDeployment.{name}``, awaited."
    return method


class LLMTranslatorDeployment(TranslatorDeployment):
    """The translator over a Ray Serve LLM deployment (``llm_handle``, vLLM or ``StandInLLMServer``) through
    ``ServeLLMBackend``. Its methods are async: the translator's sync logic (batches, checks, retries) runs in a
    worker thread, and each chat request it makes is awaited on this replica's event loop, where the handle
    lives. (A sync method would run on that loop itself, where a blocking call on a handle raises.)"""

    def __init__(
        self,
        settings: Settings | Mapping[str, Any] | None = None,
        llm_handle: Any = None,
        *,
        llm_model_id: str | None = None,
        stage: Any = None,
    ) -> None:
        from pipelines.translate import LLMTranslator
        from serve_app.llm import ServeLLMBackend

        s = settings_from(settings)
        self.backend = ServeLLMBackend(llm_handle, model_id=llm_model_id or s.translator.model)
        super().__init__(s, stage=stage if stage is not None else LLMTranslator(s.translator, self.backend))

    async def _in_thread(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.backend.bind_loop(asyncio.get_running_loop())
        method = getattr(super(), name)
        return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

    translate = _awaited("translate")
    shorten = _awaited("shorten")
    translate_texts = _awaited("translate_texts")


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

    def synthesize(
        self, translations: Sequence[Translation], language: str, voice: str | None = None
    ) -> tuple[list[Clip], int]:
        """One Clip per translation, and how many were synthesised (not served from the clip cache). ``voice``: the
        job's own voice spec (checked by the runner), else the stage's voice for ``language``."""
        with self._lock:
            clips = self.stage(translations, language, voice=voice)
            return clips, int(getattr(self.stage, "synthesized_count", len(clips)))

    def resolve_voice(self, voice: str | None, language: str | None = None) -> str:
        """An API ``voice`` → a voice spec: a configured spec or its short name (``en_US-joe-medium``), a catalog
        voice ``engine:voice`` (``rhvoice:irina``, ``espeak:de``; checked, never a file path), a language code, or
        an OpenAI voice name (alloy, nova, …: the default voice of ``language``, English without one).
        ``language``: a hint; a catalog voice must then speak it. Raises InvalidVoice, UnknownLanguage."""
        from pipelines.jobvoices import check_job_voice

        raw = (voice or "").strip()
        lang = normalize_language(language) if language else None
        configured: dict[str, str] = dict(getattr(self.stage, "settings", self.settings.tts).voices)
        if not raw or raw.lower() in OPENAI_VOICES or raw.lower() == "default":
            return self.voice_for(lang or "en")
        for spec in configured.values():
            if raw == spec or raw == spec.rsplit(":", 1)[-1]:
                return spec
        if ":" in raw:
            return check_job_voice(lang, raw, self.settings.storage.models_dir, allow_paths=False)
        if "/" in raw:
            raise InvalidVoice(f"unknown voice {raw!r}; use a voice id from GET /v1/voices or a language code")
        return self.voice_for(normalize_language(raw))

    def voices(self, language: str | None = None) -> dict[str, Any]:
        """The catalog as this replica sees it (``pipelines.voices.list_voices``: installed or not, licence,
        measured CER and speed), and ``defaults``: the voice each language's job gets (settings tts.voices, else
        the catalog's default, else espeak-ng). ``language`` filters both. Raises UnknownLanguage."""
        from pipelines.voices import list_voices

        lang = normalize_language(language) if language else None
        configured = dict(getattr(self.stage, "settings", self.settings.tts).voices)
        rows = list_voices(self.settings.storage.models_dir, lang, configured=configured)
        langs = [lang] if lang else sorted({str(x) for r in rows for x in r["languages"]} | set(configured))
        defaults: dict[str, str] = {}
        for code in langs:
            try:
                defaults[code] = self.voice_for(code)
            except VTError:  # a configured voice gone missing: that language has no default to offer
                continue
        for row in rows:
            row["default_for"] = [code for code, spec in defaults.items() if spec == row["id"]]
        return {"voices": rows, "defaults": defaults}

    def speech(self, text: str, voice: str | None = None, language: str | None = None) -> tuple[np.ndarray, int]:
        """Speak ``text`` with ``voice`` (see ``resolve_voice``): float32 mono samples and their rate (Hz)."""
        spec = self.resolve_voice(voice, language)
        with self._lock:
            synth = self.stage.synthesizer(spec)
            samples = np.asarray(synth.synthesize(text), dtype=np.float32)
            return samples, int(synth.sample_rate_hz)

    def info(self) -> dict[str, Any]:
        return {"name": "tts", "voices": dict(self.settings.tts.voices)}

    def ready(self) -> bool:
        return True


class _Counted:
    """A thread-safe call counter (``info()`` reports it: which replica did how much)."""

    def __init__(self) -> None:
        self._count_lock = threading.Lock()
        self.calls = 0

    def _counted(self) -> None:
        with self._count_lock:
            self.calls += 1


class SeparatorDeployment(_Counted):
    """Source separation (``pipelines.separate.SpleeterSeparator``, onnxruntime on CPU) behind a deployment, one
    chunk per call: the caller (``HandleSeparator``) decodes the input, sends each overlapping chunk's samples and
    cross-fades and writes the stem, so the replica holds one chunk and may run on another node. ``stage`` may be
    injected (anything with ``background_chunk``); else the model loads on the first call, so the app starts (and
    background 'duck' or 'none' works) where the separation model is not pulled."""

    def __init__(self, settings: Settings | Mapping[str, Any] | None = None, *, stage: Any = None) -> None:
        super().__init__()
        self.settings = settings_from(settings)
        self._stage = stage
        self._load_lock = threading.Lock()

    @property
    def stage(self) -> Any:
        with self._load_lock:
            if self._stage is None:
                from pipelines.separate import SpleeterSeparator

                self._stage = SpleeterSeparator(self.settings.storage.models_dir)  # SeparationUnavailable
            return self._stage

    def separate(self, samples: np.ndarray) -> np.ndarray:
        """The background of one chunk: (2, n <= separate.CHUNK) float32 samples at 44.1 kHz -> (2, n) float32.
        Raises SeparationUnavailable when the model is not pulled (the runner checks that before any work)."""
        self._counted()
        return np.asarray(self.stage.background_chunk(np.asarray(samples, dtype=np.float32)), dtype=np.float32)

    def info(self) -> dict[str, Any]:
        from pipelines.separate import MODEL_NAME

        return {"name": MODEL_NAME, "calls": self.calls}

    def ready(self) -> bool:
        return True


class DiarizerDeployment(_Counted):
    """Speaker diarization (``pipelines.diarize.Diarizer``: the ONNX d-vector embedder on CPU, spectral
    clustering) behind a deployment. ``stage`` may be injected (a ``DiarizationStage``)."""

    def __init__(self, settings: Settings | Mapping[str, Any] | None = None, *, stage: Any = None) -> None:
        super().__init__()
        self.settings = settings_from(settings)
        if stage is None:
            from pipelines.diarize import Diarizer

            stage = Diarizer(self.settings.diarize)
        self.stage = stage

    def diarize(
        self,
        audio: np.ndarray,
        transcript: Transcript,
        speakers: int | None = None,
        settings: DiarizeSettings | None = None,
    ) -> Diarization:
        """Who speaks each word of ``transcript`` in ``audio`` (16 kHz mono samples, int16 PCM or float32);
        ``speakers`` forces the count, ``settings`` (the job's) replace the replica's. Raises InvalidSpeakers."""
        self._counted()
        return self.stage(audio, transcript, speakers=speakers, settings=settings)  # type: ignore[no-any-return]

    def info(self) -> dict[str, Any]:
        return {"name": "diarizer", "calls": self.calls}

    def ready(self) -> bool:
        return True
