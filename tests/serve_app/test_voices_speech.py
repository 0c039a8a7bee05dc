"""`/v1/audio/speech`'s voice resolution takes catalog voices (issue 14, first slice), with the real RHVoice."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.settings import Settings, StorageSettings
from pipelines import voices
from pipelines.errors import InvalidVoice
from serve_app.deployments import TTSDeployment

MODELS_DIR = StorageSettings().models_dir


def test_speech_with_a_catalog_voice_and_clear_errors(tmp_path: Path) -> None:
    voices.pull(MODELS_DIR, "ru")
    settings = Settings(_env_file=None)
    settings.storage.cache_dir = tmp_path / "cache"
    dep = TTSDeployment(settings)
    assert dep.resolve_voice("rhvoice:irina") == "rhvoice:irina"
    samples, rate = dep.speech("Привет, мир!", "rhvoice:irina")
    assert rate == 24000 and samples.size > rate * 0.5
    assert dep.resolve_voice("ru") == voices.default_voice("ru", MODELS_DIR)
    with pytest.raises(InvalidVoice, match="unknown voice 'rhvoice:artemiy'"):
        dep.resolve_voice("rhvoice:artemiy")  # CC-BY-NC-ND: not in the catalog
    settings.storage.models_dir = tmp_path / "empty-models"
    with pytest.raises(InvalidVoice, match="not installed"):  # a client's error: 422, not a 503
        TTSDeployment(settings).resolve_voice("rhvoice:irina")
