from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from configs.settings import Settings
from pipelines.asr import WhisperASR, pick_device
from pipelines.errors import ModelError

JFK = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


@pytest.fixture(scope="module")
def asr() -> WhisperASR:
    s = Settings(_env_file=None)
    return WhisperASR(s.asr, s.storage.models_dir)


@pytest.mark.slow
def test_jfk_transcript_and_language(asr: WhisperASR, jfk_flac: Path) -> None:
    tr = asr(jfk_flac)
    assert tr.language == "en" and tr.language_probability > 0.5
    assert words(" ".join(s.text for s in tr.segments)) == words(JFK)
    all_words = [w for s in tr.segments for w in s.words]
    assert len(all_words) == len(words(JFK))
    starts = [w.start_s for w in all_words]
    assert starts == sorted(starts) and all_words[-1].end_s <= tr.duration_s + 0.01


@pytest.mark.slow
def test_forced_language_and_silence(asr: WhisperASR) -> None:
    silence = np.zeros(16000 * 3, dtype=np.float32)
    tr = asr(silence, language="en")
    assert tr.segments == () and tr.language == "en"


@pytest.mark.slow
def test_russian_detected(asr: WhisperASR, data_dir: Path) -> None:
    tr = asr(data_dir / "ru_num.wav")
    assert tr.language == "ru"
    assert any(re.search("[а-яё]", s.text.lower()) for s in tr.segments)


def test_device_selection_on_cpu() -> None:
    assert pick_device("auto", "auto") == ("cpu", "int8")
    assert pick_device("cuda", "auto") == ("cuda", "float16")
    assert pick_device("cpu", "float32") == ("cpu", "float32")


def test_bad_model_path_is_a_model_error(tmp_path: Path) -> None:
    s = Settings(_env_file=None)
    s.asr.model = str(tmp_path / "missing-model")
    with pytest.raises(ModelError):
        WhisperASR(s.asr, s.storage.models_dir)
