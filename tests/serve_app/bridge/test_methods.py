"""The bridge's models over a real Pipeline (fake ASR): transcription goes through the runner's stage cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.settings import Settings
from pipelines.errors import NoAudioStream
from pipelines.runner import Pipeline
from serve_app.bridge.methods import PipelineModels
from tests.conftest import make_video
from tests.pipelines.test_runner import FakeASR


def test_transcribe_uses_the_runner_and_its_cache(tmp_path: Path, test_mp3: Path) -> None:
    settings = Settings(_env_file=None)
    settings.storage.cache_dir = tmp_path / "cache"
    asr = FakeASR()
    models = PipelineModels(lambda: Pipeline(settings, asr=asr))
    video = make_video(tmp_path / "clip.mp4", test_mp3, 6.0)
    first = models.transcribe(video, None)
    assert first.language == "en" and len(first.segments) == 2
    assert models.transcribe(video, None) == first and asr.calls == 1  # the second call is a cache hit
    with pytest.raises(NoAudioStream):
        models.transcribe(make_video(tmp_path / "silent.mp4", None, 1.0), None)
