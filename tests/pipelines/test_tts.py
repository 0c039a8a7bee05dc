from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from configs.settings import StorageSettings, TTSSettings
from pipelines.errors import ModelError, UnknownLanguage
from pipelines.models import resolve
from pipelines.schema import Translation
from pipelines.tts import EspeakSynthesizer, PiperSynthesizer, TTSStage, cache_key, decode_wav_bytes, trim_silence

MODELS_DIR = StorageSettings().models_dir


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0


@pytest.fixture(scope="module")
def piper_model() -> Path:
    try:
        return Path(resolve("bundled:en_US-joe-medium", MODELS_DIR))
    except ModelError as exc:
        pytest.skip(f"bundled piper voice missing: {exc}")


@pytest.mark.slow
def test_piper_speaks_english(piper_model: Path) -> None:
    synth = PiperSynthesizer(piper_model)
    audio = synth.synthesize("And so, my fellow Americans, ask not what your country can do for you.")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.3 < audio.size / synth.sample_rate_hz < 10.0
    assert _rms(audio) > 0.02 and float(np.abs(audio).max()) <= 1.0


@pytest.mark.parametrize(
    ("language", "text"),
    [("ru", "Привет, мир. Как у тебя дела?"), ("es", "Hola, mundo. ¿Cómo estás hoy?")],
)
def test_espeak_speaks(tmp_path: Path, language: str, text: str) -> None:
    # Russian's default is an RHVoice voice once installed (tests/pipelines/test_voices.py): ask for espeak-ng.
    stage = TTSStage(TTSSettings(voices={"ru": "espeak:ru", "es": "espeak:es"}), MODELS_DIR, cache_dir=tmp_path)
    assert stage.voice_for(language) == f"espeak:{language}"
    [clip] = stage([Translation(id=7, source="x", text=text)], language)
    assert clip.id == 7 and clip.sample_rate_hz == 22050
    assert 0.3 < clip.duration_s < 10.0
    assert _rms(clip.samples) > 0.02


def test_espeak_text_starting_with_dash_is_not_an_option() -> None:
    audio = EspeakSynthesizer("en-us").synthesize("--version minus five")
    assert audio.size / 22050 > 0.3 and _rms(audio) > 0.02


def test_cache_hit_and_single_sentence_edit(tmp_path: Path) -> None:
    # Spanish's default may be a Kokoro voice once installed (tests/pipelines/test_kokoro.py): ask for espeak-ng.
    stage = TTSStage(TTSSettings(voices={"es": "espeak:es"}), MODELS_DIR, cache_dir=tmp_path)
    texts = [Translation(0, "a", "Buenos días."), Translation(1, "b", ""), Translation(2, "c", "Hasta luego.")]
    first = stage(texts, "es")
    assert stage.synthesized_count == 2
    assert [c.id for c in first] == [0, 1, 2] and first[1].samples.size == 0
    second = stage(texts, "es")
    assert stage.synthesized_count == 0
    assert all(abs(a.duration_s - b.duration_s) < 1e-3 for a, b in zip(first, second, strict=True))
    edited = [texts[0], texts[1], Translation(2, "c", "Hasta mañana.")]
    stage(edited, "es")
    assert stage.synthesized_count == 1
    assert (tmp_path / f"{cache_key('espeak:es', 'Hasta mañana.', 'es')}.wav").is_file()


def test_voice_from_settings_and_unknown_language() -> None:
    stage = TTSStage(TTSSettings(voices={"de": "espeak:de"}), MODELS_DIR)
    assert stage.voice_for("de") == "espeak:de"
    assert stage.voice_for("en") == "espeak:en-us"
    assert stage.voice_for("zh") == "espeak:cmn"
    with pytest.raises(UnknownLanguage, match="no text-to-speech voice"):
        stage.voice_for("xx")


def test_trim_silence() -> None:
    rate = 1000
    audio = np.concatenate([np.zeros(500), 0.5 * np.ones(200), np.zeros(300)]).astype(np.float32)
    trimmed = trim_silence(audio, rate)
    assert 200 <= trimmed.size <= 200 + 2 * 15
    assert trim_silence(np.zeros(100, dtype=np.float32), rate).size == 0


def streamed_wav(pcm: np.ndarray, rate_hz: int) -> bytes:
    """A WAV as espeak-ng writes it to a pipe: placeholder sizes in the header, an odd trailing byte."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate_hz, 2 * rate_hz, 2, 16)
    header = b"RIFF" + struct.pack("<I", 0x7FFFF024) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", 0x7FFFF000)
    return header + pcm.astype("<i2").tobytes() + b"\x01"


def test_streamed_wav_is_read_to_its_real_end() -> None:
    pcm = (np.sin(np.arange(2205) / 10.0) * 10000).astype(np.int16)
    samples, rate = decode_wav_bytes(streamed_wav(pcm, 22050))
    assert rate == 22050 and samples.dtype == np.float32
    np.testing.assert_allclose(samples, pcm / 32768.0, atol=1e-6)


@pytest.mark.parametrize("data", [b"", b"espeak-ng: voice not found\n"])
def test_non_wav_output_is_a_model_error(data: bytes) -> None:
    with pytest.raises(ModelError, match="no usable WAV"):
        decode_wav_bytes(data)
