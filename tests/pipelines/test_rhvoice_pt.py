"""RHVoice Letícia-F123 (Brazilian Portuguese, CC-BY-SA-4.0): `voices pull --lang pt` installs it, it speaks, and
being measured (bench/tts_engines.py) and commercial-use, it becomes the Portuguese default once installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.tts_cer import cer
from configs.settings import ASRSettings, StorageSettings, TTSSettings
from pipelines import voices
from pipelines.media import write_wav
from pipelines.schema import Translation
from pipelines.tts import TTSStage

MODELS_DIR = StorageSettings().models_dir


def test_leticia_speaks_portuguese_and_is_the_default_once_installed(tmp_path: Path) -> None:
    from pipelines.asr import WhisperASR

    assert "rhvoice:leticia-f123" in voices.pull(MODELS_DIR, "pt")  # with the Kokoro voices, which speak pt too
    assert voices.default_voice("pt", MODELS_DIR) == "rhvoice:leticia-f123"
    stage = TTSStage(TTSSettings(voices={}), MODELS_DIR)
    assert stage.voice_for("pt-BR") == "rhvoice:leticia-f123"
    text = "Bom dia! O trem para São Paulo sai às 8 horas."
    [clip] = stage([Translation(0, "x", text)], "pt")
    assert clip.sample_rate_hz == 24000 and 1.5 < clip.duration_s < 8.0
    assert float(np.sqrt(np.mean(np.square(clip.samples, dtype=np.float64)))) > 0.02
    write_wav(tmp_path / "pt.wav", clip.samples, clip.sample_rate_hz)
    heard = " ".join(s.text for s in WhisperASR(ASRSettings(), MODELS_DIR)(tmp_path / "pt.wav", language="pt").segments)
    assert "paulo" in heard.lower() and ("8" in heard or "oito" in heard.lower()), heard
    assert min(cer(text, heard), cer(stage.spoken_text(text, "pt"), heard)) < 0.15, heard
