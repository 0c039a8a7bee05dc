"""Subtitles as the source (``source_subtitles``: ASR never runs) and subtitles alone (no media), through the one
runner with fake model stages above the seams and real ffmpeg, pysubs2 and files underneath."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pysubs2
import pytest

from configs.settings import Settings
from pipelines.errors import InvalidSubtitles
from pipelines.runner import Pipeline
from pipelines.schema import JobRequest
from tests.pipelines import test_runner
from tests.pipelines.test_runner import FakeTTS

SRT = """1
00:00:00,400 --> 00:00:01,900
Ask not what your country can do for you.

2
00:00:02,200 --> 00:00:03,700
Ask what you can do for your country.

3
00:00:03,900 --> 00:00:05,600
Thank you all.
"""
CUES = ["Ask not what your country can do for you.", "Ask what you can do for your country.", "Thank you all."]


class NoASR:
    """ASR must never run when the transcript comes from subtitles."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("ASR ran")


class TagTranslator:
    name = "tag-translator"

    def translate(self, sentences, *, source_language, target_language, glossary=None):  # type: ignore[no-untyped-def]
        from pipelines.schema import Translation

        return [Translation(s.id, s.text, f"[{target_language}] {s.text}") for s in sentences]

    def shorten(self, text: str, *, target_language: str, max_chars: int) -> str | None:
        return None  # keep the line: these tests look at timing, not wording


class FastTTS(FakeTTS):
    """Speech 0.02 s per character: every line fits its cue."""

    def __call__(self, translations, language, voice=None):  # type: ignore[no-untyped-def]
        clips = super().__call__(translations, language, voice)
        for clip in clips:
            clip.samples = clip.samples[: len(clip.samples) // 3]
        return clips


settings = test_runner.settings  # the runner tests' fixture: default settings, a cache of the test's own


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> Path:
    from tests.conftest import make_video

    return make_video(tmp_path_factory.mktemp("v") / "talk.mp4", jfk_flac, 6.0, size="64x48")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_source_subtitles_are_the_transcript_and_asr_never_runs(settings: Settings, video: Path, tmp_path: Path) -> None:
    srt = write(tmp_path / "talk.en.srt", SRT)
    pipe = Pipeline(settings, asr=NoASR(), translator=TagTranslator(), tts=FakeTTS())
    request = JobRequest(input=str(video), target_languages=["ru"], mode="subtitles", source_subtitles=str(srt))
    result = pipe.run(request, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "talk.report.json").read_text(encoding="utf-8"))
    assert "asr" not in report["timings_s"] and "subtitles" in report["timings_s"]
    rows = report["targets"]["ru"]["sentences"]
    assert " ".join(r["source"] for r in rows) == " ".join(CUES)  # the transcript is the file's text
    assert all(r["translation"].startswith("[ru] ") and "missing" not in r["flags"] for r in rows)
    covered = " ".join(r["translation"].removeprefix("[ru] ") for r in rows)
    assert all(cue in covered for cue in CUES)  # every cue is translated
    assert report["source_language"] == "en" and report["source_subtitles"]["cues"] == 3
    assert report["source_subtitles"]["timing_rough"] is False and result.notes == []
    assert not list(settings.storage.cache_dir.rglob("audio16k.wav"))  # not even the ASR's audio was extracted


def test_rough_source_timing_is_reported(settings: Settings, video: Path, tmp_path: Path) -> None:
    rough = SRT.replace("00:00:02,200", "00:00:01,500").replace("00:00:05,600", "00:00:07,000")
    srt = write(tmp_path / "talk.srt", rough)
    pipe = Pipeline(settings, asr=NoASR(), translator=TagTranslator(), tts=FakeTTS())
    request = JobRequest(input=str(video), target_languages=["es"], source_language="en", mode="dub", source_subtitles=str(srt))
    result = pipe.run(request, tmp_path / "out")
    entry = result.report["source_subtitles"]
    assert entry["timing_rough"] and entry["overlapping_cues"] == [2] and entry["cues_past_media_end"] == [3]
    assert any("overlap" in n for n in result.report["notes"]) and any("past the media" in n for n in result.notes)
    assert (tmp_path / "out" / "talk.es.mp4").is_file()


def test_subtitles_alone_keep_cue_count_and_timing(settings: Settings, tmp_path: Path) -> None:
    srt = write(tmp_path / "talk.en.srt", SRT)
    pipe = Pipeline(settings, asr=NoASR(), translator=TagTranslator(), tts=FakeTTS())
    result = pipe.run(JobRequest(input=str(srt), target_languages=["es"], mode="subtitles"), tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["talk.es.srt", "talk.es.vtt", "talk.report.json"]
    source, out = pysubs2.load(str(srt)), pysubs2.load(str(tmp_path / "out" / "talk.es.srt"))
    assert [(e.start, e.end) for e in out] == [(e.start, e.end) for e in source]
    assert [e.plaintext.replace("\n", " ") for e in out] == [f"[es] {c}" for c in CUES]
    assert result.report["targets"]["es"]["resplit_cues"] == 0 and "asr" not in result.report["timings_s"]


def test_subtitles_alone_dubbed_is_an_audio_track_timed_to_the_cues(settings: Settings, tmp_path: Path) -> None:
    srt = write(tmp_path / "talk.en.srt", SRT)
    pipe = Pipeline(settings, asr=NoASR(), translator=TagTranslator(), tts=FastTTS())
    result = pipe.run(JobRequest(input=str(srt), target_languages=["es"], mode="dub"), tmp_path / "out")
    m4a = tmp_path / "out" / "talk.es.m4a"
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format", str(m4a)],
                                      capture_output=True, check=True).stdout)  # fmt: skip
    assert [s["codec_name"] for s in probe["streams"]] == ["aac"]
    assert float(probe["format"]["duration"]) >= 5.5  # up to the last cue's end (5.6 s)
    plan = result.report["targets"]["es"]["sentences"]
    assert [r["dub_start_s"] for r in plan] == [0.4, 2.2, 3.9]  # each line starts on its cue
    assert not list((tmp_path / "out").glob(".*"))


def test_malformed_subtitles_fail_with_the_line_and_leave_nothing(settings: Settings, tmp_path: Path) -> None:
    srt = write(tmp_path / "bad.en.srt", SRT.replace("00:00:02,200 --> 00:00:03,700", "00:00:02,200 -> 00:00:03,700"))
    pipe = Pipeline(settings, asr=NoASR(), translator=TagTranslator(), tts=FakeTTS())
    with pytest.raises(InvalidSubtitles, match="bad.en.srt line 6"):
        pipe.run(JobRequest(input=str(srt), target_languages=["es"]), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_subtitles_alone_take_a_redubs_edited_lines(settings: Settings, tmp_path: Path) -> None:
    from pipelines.schema import Translation

    srt = write(tmp_path / "talk.en.srt", SRT)
    pipe = Pipeline(settings, asr=NoASR(), translator=TagTranslator(), tts=FastTTS())
    edited = [Translation(i, c, f"edited {i}") for i, c in enumerate(CUES)]
    pipe.run(JobRequest(input=str(srt), target_languages=["es"], mode="subtitles"), tmp_path / "out", translations={"es": edited})
    assert [e.plaintext for e in pysubs2.load(str(tmp_path / "out" / "talk.es.srt"))] == ["edited 0", "edited 1", "edited 2"]
