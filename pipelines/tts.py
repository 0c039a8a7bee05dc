"""Text to speech: one ``Clip`` per translated sentence.

Backends honour the small ``Synthesizer`` protocol: Piper (neural, ONNX, loaded once through its
Python API), espeak-ng (formant synthesis, a subprocess; it speaks ~100 languages), RHVoice
(pipelines/rhvoice.py) and Kokoro (pipelines/kokoro.py; one voice speaks several languages); voices from
the catalog in pipelines/voices.py.
``TTSStage`` picks a voice per language, caches each clip as a WAV keyed by a hash of voice, language and
text (so editing one sentence re-synthesises only that one) and trims edge silence so the
timing fit works with the speech itself.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from pipelines.errors import BackendUnavailable, ModelError, UnknownLanguage
from pipelines.media import read_wav, write_wav
from pipelines.schema import Clip, Translation

if TYPE_CHECKING:
    from configs.settings import TTSSettings

logger = logging.getLogger(__name__)

SILENCE_THRESHOLD = 0.01  # -40 dBFS: below this a sample counts as silence when trimming
TRIM_PAD_MS = 15.0  # keep a little of the edges so plosive onsets and release tails survive
EMPTY_CLIP_RATE_HZ = 22050
DEFAULT_ESPEAK_RATE_WPM = 175  # settings tts.espeak_rate_wpm's default (and espeak-ng's own)

# Whisper language codes whose espeak-ng voice has another name.
ESPEAK_ALIASES: dict[str, str] = {"en": "en-us", "zh": "cmn", "no": "nb", "nn": "nb", "fr": "fr-fr"}


class Synthesizer(Protocol):
    """A TTS backend: text in, float32 mono samples in [-1, 1] out."""

    name: str
    sample_rate_hz: int

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text``; return float32 mono samples at ``sample_rate_hz``. Raises ModelError."""
        ...


def trim_silence(samples: np.ndarray, sample_rate_hz: int, *, threshold: float = SILENCE_THRESHOLD) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``threshold`` (keeping ``TRIM_PAD_MS`` of margin).

    An all-silent input yields an empty array.
    """
    audio = np.asarray(samples, dtype=np.float32).reshape(-1)
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return np.zeros(0, dtype=np.float32)
    pad = int(sample_rate_hz * TRIM_PAD_MS / 1000.0)
    start = max(0, int(loud[0]) - pad)
    end = min(audio.size, int(loud[-1]) + 1 + pad)
    return audio[start:end].copy()


class PiperSynthesizer:
    """Piper neural TTS (``piper-tts``), one ONNX voice loaded once."""

    def __init__(self, model_path: Path) -> None:
        try:
            from piper import PiperVoice
        except ImportError as exc:  # pragma: no cover - piper is a core dependency
            raise BackendUnavailable("piper-tts is not installed; `pip install piper-tts`") from exc
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"piper voice not found: {path}")
        try:
            self._voice = PiperVoice.load(str(path))
        except Exception as exc:  # onnxruntime/json raise many types for a corrupt voice
            raise ModelError(f"cannot load piper voice {path.name}: {exc}") from exc
        self.name = f"piper:{path.stem}"
        self.sample_rate_hz = int(self._voice.config.sample_rate)
        logger.info("loaded piper voice %s (%d Hz)", path.name, self.sample_rate_hz)

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text`` (all its sentences, concatenated)."""
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text)]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)


class EspeakSynthesizer:
    """espeak-ng through a subprocess; text goes in on stdin, so it is never parsed as options."""

    def __init__(
        self, voice: str, rate_wpm: int = 175, *, data_home: Path | None = None, bin_dir: Path | None = None
    ) -> None:
        """``data_home``: a folder holding an ``espeak-ng-data`` tree to use instead of the system's
        (``--path``); ``bin_dir``: put first on PATH (where espeak-ng finds the ``mbrola`` program)."""
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise BackendUnavailable("espeak-ng is not installed; `apt-get install espeak-ng`")
        self._binary = binary
        self.voice = voice
        self.rate_wpm = int(rate_wpm)
        self.name = f"espeak:{voice}"
        self.sample_rate_hz = 22050  # espeak-ng's native rate; updated from each WAV header
        self._options = [f"--path={data_home}"] if data_home is not None else []
        self._env = (
            None if bin_dir is None else {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        )

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text``. Raises ModelError when espeak-ng fails (e.g. an unknown voice)."""
        cmd = [self._binary, *self._options, "-v", self.voice, "-s", str(self.rate_wpm), "-b", "1", "--stdin", "--stdout"]  # fmt: skip
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False, env=self._env)
        if proc.returncode != 0 or not proc.stdout:
            stderr = proc.stderr.decode("utf-8", "replace").strip()
            raise ModelError(f"espeak-ng failed for voice {self.voice!r}: {stderr or proc.returncode}", detail=stderr)
        samples, rate = decode_wav_bytes(proc.stdout)
        self.sample_rate_hz = rate
        return samples


def decode_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """float32 mono samples and the rate of WAV ``data`` from espeak-ng's stdout. Its header's sizes are
    placeholders (a pipe cannot be rewound to fix them); libsndfile reads such a stream to its real end.

    Raises ModelError when ``data`` is not a WAV with samples.
    """
    import soundfile as sf

    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except RuntimeError as exc:  # soundfile.LibsndfileError: not a format libsndfile knows
        raise ModelError(f"espeak-ng returned no usable WAV data: {exc}") from exc
    return samples[:, 0].copy(), int(rate)


@lru_cache(maxsize=1)
def espeak_voices() -> frozenset[str]:
    """Voice names espeak-ng accepts for ``-v`` (language codes and voice file names, lowercase)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return frozenset()
    proc = subprocess.run([binary, "--voices"], capture_output=True, text=True, check=False)
    names: set[str] = set()
    for line in proc.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            names.add(cols[1].lower())
            names.add(cols[4].lower())
            names.add(cols[4].rsplit("/", 1)[-1].lower())
    return frozenset(names)


def espeak_voice_for(language: str) -> str:
    """The espeak-ng voice for an ISO 639-1 code. Raises UnknownLanguage when espeak-ng has none."""
    voices = espeak_voices()
    if not voices:
        raise BackendUnavailable("espeak-ng is not installed; `apt-get install espeak-ng`")
    key = language.strip().lower().replace("_", "-")
    base = key.split("-")[0]
    for candidate in (ESPEAK_ALIASES.get(key), key, ESPEAK_ALIASES.get(base), base):
        if candidate and candidate in voices:
            return candidate
    raise UnknownLanguage(
        f"no text-to-speech voice for language {language!r}: espeak-ng has no such voice "
        "(see `espeak-ng --voices`); set one in settings tts.voices"
    )


def cache_key(voice: str, text: str, language: str = "") -> str:
    """The cache file stem of one clip: sha256 of voice, language (a Kokoro voice speaks several) and text."""
    return hashlib.sha256(f"{voice}\x00{language}\x00{text}".encode()).hexdigest()


class TTSStage:
    """Translations -> Clips for one language. ``synthesized_count``: clips made (not cached) in the last call."""

    def __init__(self, settings: TTSSettings, models_dir: Path, cache_dir: Path | None = None) -> None:
        self.settings = settings
        self.models_dir = Path(models_dir)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.synthesized_count = 0
        self._synths: dict[tuple[str, str], Synthesizer] = {}
        self._checked: set[str] = set()  # openai: voices whose server answered

    def voice_for(self, language: str) -> str:
        """The voice spec for ``language``: from settings (checked against the catalog), else the catalog's
        default (pipelines/voices.py), else ``espeak:<voice>``. Raises UnknownLanguage or ModelError."""
        from pipelines.voices import check_voice, default_voice

        key = language.strip().lower().replace("_", "-")
        for candidate in (key, key.split("-")[0]):
            if candidate in self.settings.voices:
                return self.probe(check_voice(self.settings.voices[candidate], self.models_dir, key))
        return default_voice(key, self.models_dir) or f"espeak:{espeak_voice_for(key)}"

    def probe(self, voice: str) -> str:
        """``voice``, after reaching its server once if it is an ``openai:`` voice (a dead server: an error before
        any work, BackendUnavailable/ModelError). Other voices are local: nothing to reach."""
        if voice.startswith("openai:") and voice not in self._checked:
            self.synthesizer(voice).check()  # type: ignore[attr-defined]
            self._checked.add(voice)
        return voice

    def synthesizer(self, voice: str, language: str | None = None) -> Synthesizer:
        """The (cached) backend for a voice spec ``piper:<path|bundled:name>``, ``espeak:<voice>`` or a catalog
        voice. ``language`` matters only to voices that speak several (Kokoro; default: the voice's first)."""
        kind, _, arg = voice.partition(":")
        key = (voice, _base_language(language) if language and kind == "kokoro" else "")
        if key not in self._synths:
            if kind == "piper":
                from pipelines.models import resolve

                self._synths[key] = PiperSynthesizer(Path(resolve(arg, self.models_dir)))
            elif kind == "espeak":
                self._synths[key] = EspeakSynthesizer(arg, self.settings.espeak_rate_wpm)
            elif kind in ("rhvoice", "kokoro"):
                from pipelines.voices import synthesizer

                made = synthesizer(voice, self.models_dir, key[1] or None, self.settings.kokoro_threads)
                self._synths[key] = made  # type: ignore[assignment]
            elif kind == "mbrola":
                from pipelines import mbrola
                from pipelines.voices import CATALOG, check_voice

                entry = CATALOG[check_voice(voice, self.models_dir)]
                self._synths[key] = mbrola.synthesizer(entry.folder, self.models_dir, self.settings.espeak_rate_wpm)
            elif kind == "openai":
                from pipelines.openai_speech import OpenAISpeechSynthesizer

                self._synths[key] = OpenAISpeechSynthesizer(arg, self.settings.openai)
            else:
                raise ModelError(
                    f"unknown voice {voice!r}; use 'piper:<model>', 'espeak:<voice>', 'rhvoice:<voice>', "
                    "'kokoro:<voice>', 'mbrola:<voice>' or 'openai:<voice>'"
                )
        return self._synths[key]

    def __call__(self, translations: Sequence[Translation], language: str, voice: str | None = None) -> list[Clip]:
        """One Clip per translation (same ids, same order); empty text gives a zero-length clip. ``voice``: a
        job's own voice spec (checked by the caller, ``pipelines.jobvoices``); None: ``voice_for(language)``.
        A translation's own ``voice`` (a voice per speaker) wins over both."""
        voice = voice or self.voice_for(language)
        self.synthesized_count = 0
        clips = [self._clip(t.voice or voice, t, language) for t in translations]
        cached = len(clips) - self.synthesized_count
        logger.info("tts %s: %d clips, %d synthesised, %d cached", voice, len(clips), self.synthesized_count, cached)
        return clips

    def spoken_text(self, text: str, language: str) -> str:
        """What the engine is given for ``text``: numbers, dates, currency... spelled out (pipelines/normalize.py)
        unless settings tts.normalize_text is off."""
        if not self.settings.normalize_text:
            return text
        from pipelines.normalize import normalize

        try:
            return normalize(text, language)
        except Exception as exc:  # noqa: BLE001  # a normaliser bug must not fail the dub: speak the text as written
            logger.warning(
                "text normalisation failed for %r (%s: %s); speaking it as written", text, type(exc).__name__, exc
            )
            return text

    def _clip(self, voice: str, translation: Translation, language: str) -> Clip:
        text = self.spoken_text(translation.text.strip(), language).strip()
        if not text:
            return Clip(translation.id, np.zeros(0, dtype=np.float32), EMPTY_CLIP_RATE_HZ)
        cached = self._cache_path(voice, text, language)
        if cached is not None and cached.is_file():
            samples, rate = read_wav(cached)
            return Clip(translation.id, samples.reshape(-1), rate)
        from pipelines.voices import split_pitch

        base, semitones = split_pitch(voice)  # a pitch-shifted copy of a voice: more speakers than voices
        synth = self.synthesizer(base, language)
        samples = trim_silence(synth.synthesize(text), synth.sample_rate_hz)
        if semitones and samples.size:
            import librosa

            samples = librosa.effects.pitch_shift(samples, sr=synth.sample_rate_hz, n_steps=semitones).astype(
                np.float32
            )
        self.synthesized_count += 1
        if cached is not None:
            write_wav(cached, samples, synth.sample_rate_hz)
        return Clip(translation.id, samples, synth.sample_rate_hz)

    def _cache_path(self, voice: str, text: str, language: str) -> Path | None:
        if self.cache_dir is None:
            return None
        if voice.startswith("openai:"):  # the same voice name on another server or model is another voice
            voice = f"{voice}@{self.settings.openai.base_url}#{self.settings.openai.model}"
        # espeak-ng's rate changes the clip: a slower rate is another clip (the default rate keeps the plain key,
        # so the clips cached before stay valid).
        rate = self.settings.espeak_rate_wpm
        if voice.startswith("espeak:") and rate != DEFAULT_ESPEAK_RATE_WPM:
            voice = f"{voice}@{rate}wpm"
        return self.cache_dir / f"{cache_key(voice, text, _base_language(language))}.wav"


def _base_language(language: str) -> str:
    """``pt-BR`` -> ``pt``: the catalog's language codes."""
    return language.strip().lower().replace("_", "-").split("-")[0]
