"""The runner with mix.background = separate (issue 15): the real separation stage under fake ASR, translator and
TTS; the stem is made once per input and reused by a re-run with edited lines (what a re-dub does); the stage reports
its progress while it runs, and a cancel stops it there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from configs.settings import Settings
from pipelines.runner import Pipeline
from pipelines.schema import JobRequest, Translation
from pipelines.separate import SpleeterSeparator
from tests.pipelines.test_runner import FakeASR, FakeTranslator, FakeTTS


class CountingSeparator(SpleeterSeparator):
    def __init__(self, models_dir: Path) -> None:
        super().__init__(models_dir)
        self.calls = 0

    def __call__(self, input_path: Path, out_path: Path, *, progress: Any = None) -> Path:
        self.calls += 1
        return super().__call__(input_path, out_path, progress=progress)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, test_mp3: Path) -> Path:
    from tests.conftest import make_video

    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", test_mp3, 6.0)


@pytest.mark.slow
def test_separation_runs_once_per_input_and_a_redub_reuses_it(video: Path, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, mix={"background": "separate"})  # type: ignore[arg-type]
    settings.storage.cache_dir = tmp_path / "cache"
    separator = CountingSeparator(settings.storage.models_dir)
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS(), separator=separator)
    events: list[tuple[str, float, str | None]] = []
    first = pipe.run(
        JobRequest(input=str(video), target_languages=["ru", "es"]), tmp_path / "out",
        progress=lambda *event: events.append(event),
    )  # fmt: skip
    separating = [f for stage, f, lang in events if stage == "separate"]
    assert separating[0] == 0.0 and 0.0 < separating[1] < 1.0 and separating[-1] == 1.0  # during, not just at the ends
    assert ("diarize", 0.0, None) in events and ("diarize", 1.0, None) in events
    assert separator.calls == 1 and "separate" in first.report["timings_s"] and first.report["background"] == "separate"
    stems = list((tmp_path / "cache").rglob("background.*.flac"))
    assert len(stems) == 1 and sf.info(stems[0]).duration == pytest.approx(6.0, abs=0.05)
    # a re-dub: the same input, one edited line, through a pipeline over other settings sharing the stages
    edited = [Translation(0, "w0 w1 w2 w3 end.", "новый перевод"), Translation(1, "Second one.", "второй")]
    redub = pipe.with_settings(settings.model_copy()).run(
        JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "redub", transcript=first.transcript,
        translations={"ru": edited},
    )  # fmt: skip
    assert separator.calls == 1 and "separate" in redub.report["cache_hits"]
    assert "separate" not in redub.report["timings_s"]


@pytest.mark.slow
def test_the_job_chooses_its_background(video: Path, tmp_path: Path) -> None:
    """A job's own background wins over the setting: 'none' never separates (and its dub has no original)."""
    settings = Settings(_env_file=None, mix={"background": "separate"})  # type: ignore[arg-type]
    settings.storage.cache_dir = tmp_path / "cache"
    separator: Any = CountingSeparator(settings.storage.models_dir)
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS(), separator=separator)
    report = pipe.run(JobRequest(input=str(video), target_languages=["ru"], background="none"), tmp_path / "out").report
    assert (
        report["background"] == "none" and separator.calls == 0 and not list((tmp_path / "cache").rglob("background.*"))
    )
    dub = tmp_path / "dub.wav"
    import subprocess

    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "out" / "clip.ru.mp4"), "-map", "0:a:0", str(dub)], check=True
    )
    samples, rate = sf.read(dub, dtype="float32")
    for lo, hi in ((0.0, 0.4), (2.5, 2.9)):  # before the first line, and between the lines: the original speaks there
        assert float(np.abs(samples[int(lo * rate) : int(hi * rate)]).max()) < 1e-3


@pytest.mark.slow
def test_a_cancel_stops_the_separation_where_it_is(video: Path, tmp_path: Path) -> None:
    """The cancel comes while the separator runs: JobCancelled, and no half-written stem in the cache."""
    from pipelines.errors import JobCancelled

    settings = Settings(_env_file=None, mix={"background": "separate"})  # type: ignore[arg-type]
    settings.storage.cache_dir = tmp_path / "cache"
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS())
    events: list[tuple[str, float]] = []
    with pytest.raises(JobCancelled):
        pipe.run(
            JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out",
            progress=lambda stage, f, lang: events.append((stage, f)),
            should_cancel=lambda: events[-1:] == [("separate", 0.0)],  # the stage began: cancel from now on
        )  # fmt: skip
    assert events[-1] == ("separate", 0.0) and not list((tmp_path / "cache").rglob("background.*"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
