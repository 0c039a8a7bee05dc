"""The sequential runner with fake model stages (above the seams) and real ffmpeg underneath."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pysubs2
import pytest

from configs.settings import Settings
from pipelines.errors import JobCancelled, MediaTooLong
from pipelines.runner import Pipeline
from pipelines.schema import Clip, JobRequest, Segment, Transcript, Translation, Word

RATE = 16000


class FakeASR:
    name = "fake-asr"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, audio: object, *, language: str | None = None) -> Transcript:
        self.calls += 1
        words = tuple(Word(0.5 + i * 0.4, 0.8 + i * 0.4, f" w{i}") for i in range(4)) + (Word(2.1, 2.4, " end."),)
        seg = Segment(0.5, 2.4, "w0 w1 w2 w3 end.", words)
        words2 = (Word(3.0, 3.3, " Second"), Word(3.3, 3.8, " one."))
        return Transcript("en", 0.99, 6.0, (seg, Segment(3.0, 3.8, "Second one.", words2)))


class FakeTranslator:
    name = "fake-translator"

    def __init__(self, long: bool = False) -> None:
        self.long = long
        self.calls = 0
        self.shortened: list[str] = []

    def translate(self, sentences, *, source_language, target_language, glossary=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        text = "очень длинный перевод " * 6 if self.long else "перевод"
        return [Translation(s.id, s.text, f"{text} {s.id}".strip()) for s in sentences]

    def shorten(self, text: str, *, target_language: str, max_chars: int) -> str | None:
        self.shortened.append(text)
        return "коротко"


class FakeTTS:
    """Speech 0.06 s per character: long text overflows its slot."""

    def __init__(self) -> None:
        self.synthesized_count = 0
        self.total = 0

    def voice_for(self, language: str) -> str:
        return f"fake:{language}"

    def __call__(self, translations, language, voice=None):  # type: ignore[no-untyped-def]
        self.synthesized_count = len(translations)
        self.total += len(translations)
        out = []
        for t in translations:
            n = int(0.06 * len(t.text) * RATE)
            out.append(Clip(t.id, (0.2 * np.sin(np.arange(n) / 10.0)).astype(np.float32), RATE))
        return out


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    s = Settings(_env_file=None)
    s.storage.cache_dir = tmp_path / "cache"
    return s


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, test_mp3: Path) -> Path:
    from tests.conftest import make_video

    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", test_mp3, 6.0)


def test_run_writes_all_outputs_and_caches_stages(settings: Settings, video: Path, tmp_path: Path) -> None:
    asr, tr, tts = FakeASR(), FakeTranslator(), FakeTTS()
    pipe = Pipeline(settings, asr=asr, translator=tr, tts=tts)
    seen: list[tuple[str, float]] = []
    result = pipe.run(
        JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out", progress=lambda s, f, _: seen.append((s, f))
    )
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["clip.en.srt", "clip.en.vtt", "clip.report.json", "clip.ru.mp4", "clip.ru.srt", "clip.ru.vtt"]
    assert [s for s, f in seen if f == 0.0] == [
        "extract", "asr", "diarize", "segment", "separate", "translate", "tts", "mux"
    ]
    assert result.report["sentence_count"] == 2 and result.report["targets"]["ru"]["resynthesized"] == 2
    # a second run resumes from the cache: no ASR, no translation
    again = pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out2")
    assert (asr.calls, tr.calls) == (1, 1)
    assert {"asr", "translate"} <= set(again.report["cache_hits"])


def test_long_lines_are_shortened_when_enabled(settings: Settings, video: Path, tmp_path: Path) -> None:
    settings.translator.shorten_ratio = 0.1  # (default 0.25)
    tr, tts = FakeTranslator(long=True), FakeTTS()
    pipe = Pipeline(settings, asr=FakeASR(), translator=tr, tts=tts)
    report = pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out").report
    rows = report["targets"]["ru"]["sentences"]
    assert tr.shortened and all("shortened" in r["flags"] for r in rows)
    assert all(r["translation"] == "коротко" for r in rows)
    assert "коротко" in (tmp_path / "out" / "clip.ru.srt").read_text()
    assert report["targets"]["ru"]["resynthesized"] == 4  # 2 first, then the 2 shortened lines
    embedded = subprocess.run(  # the mp4's own translation track (what --burn-in draws, too) is the final one
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "out" / "clip.ru.mp4"), "-map", "0:s:0", "-f", "srt", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "коротко" in embedded and "длинный" not in embedded


def test_overflow_is_reported_when_shortening_is_off(settings: Settings, video: Path, tmp_path: Path) -> None:
    settings.translator.shorten_ratio = 0.0
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(long=True), tts=FakeTTS())
    report = pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out").report
    fit = report["targets"]["ru"]["fit"]
    assert fit["overflow_count"] >= 1 and fit["max_speed"] == pytest.approx(1.35)
    assert any("overflow" in r["flags"] for r in report["targets"]["ru"]["sentences"])


def test_cancel_leaves_no_output(settings: Settings, video: Path, tmp_path: Path) -> None:
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS())
    stages: list[str] = []

    def cancel() -> bool:
        return "translate" in stages

    with pytest.raises(JobCancelled):
        pipe.run(
            JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out",
            progress=lambda s, f, lang: stages.append(s), should_cancel=cancel,
        )  # fmt: skip
    assert list((tmp_path / "out").iterdir()) == []


def test_subtitles_mode_keeps_original_audio(settings: Settings, video: Path, tmp_path: Path) -> None:
    tts = FakeTTS()
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=tts)
    result = pipe.run(JobRequest(input=str(video), target_languages=["es"], mode="subtitles"), tmp_path / "o")
    assert tts.total == 0
    report = json.loads(result.outputs["report"].read_text())
    assert report["mode"] == "subtitles" and report["targets"]["es"]["fit"] is None


def test_target_equal_to_source_language(settings: Settings, video: Path, tmp_path: Path) -> None:
    tr = FakeTranslator()
    pipe = Pipeline(settings, asr=FakeASR(), translator=tr, tts=FakeTTS())
    result = pipe.run(JobRequest(input=str(video), target_languages=["en"]), tmp_path / "out")
    assert tr.calls == 0  # nothing to translate
    assert (tmp_path / "out" / "clip.en.srt").is_file() and (tmp_path / "out" / "clip.en.mp4").is_file()
    assert result.report["targets"]["en"]["sentences"][0]["translation"] == result.report["targets"]["en"]["sentences"][0]["source"]


def test_preset_translations_win_over_the_same_language_shortcut(
    settings: Settings, video: Path, tmp_path: Path
) -> None:
    """A re-dub of a target equal to the source language hands in edited lines: they are the ones used."""
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS())
    preset = {"en": [Translation(0, "w0 w1 w2 w3 end.", "Edited first."), Translation(1, "Second one.", "Second one.")]}
    result = pipe.run(JobRequest(input=str(video), target_languages=["en"]), tmp_path / "out", translations=preset)
    assert result.report["targets"]["en"]["sentences"][0]["translation"] == "Edited first."
    assert "Edited first." in (tmp_path / "out" / "clip.en.srt").read_text()


def test_max_duration_is_checked_at_probe_time_and_on_the_decoded_audio(
    settings: Settings, video: Path, tmp_path: Path
) -> None:
    from tests.pipelines.test_media import lying_mp3

    asr = FakeASR()
    pipe = Pipeline(settings, asr=asr, translator=FakeTranslator(), tts=FakeTTS())
    settings.MAX_DURATION = 5.0  # the video lasts 6 s
    with pytest.raises(MediaTooLong, match="lasts 0:00:06"):
        pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out")
    settings.MAX_DURATION = 10.0  # the mp3 claims about 5 s and decodes to 31 s
    with pytest.raises(MediaTooLong, match="decodes to more than"):
        pipe.transcribe(lying_mp3(tmp_path), out_dir=tmp_path / "t")
    assert asr.calls == 0 and not (tmp_path / "out").exists() and not (tmp_path / "t").exists()


def test_progress_events_name_their_target_language(settings: Settings, video: Path, tmp_path: Path) -> None:
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS())
    seen: list[tuple[str, str | None]] = []
    request = JobRequest(input=str(video), target_languages=["ru", "ES", "ru-RU"])  # normalised: ru, es
    pipe.run(request, tmp_path / "out", progress=lambda stage, fraction, lang: seen.append((stage, lang)))
    started = list(dict.fromkeys(seen))
    assert started == [
        ("extract", None), ("asr", None), ("diarize", None), ("segment", None), ("separate", None),
        ("translate", "ru"), ("tts", "ru"), ("mux", "ru"),
        ("translate", "es"), ("tts", "es"), ("mux", "es"),
    ]  # fmt: skip


class LateASR(FakeASR):
    """One sentence that starts 0.3 s before the end of the 6 s clip: its cue must not outlast the media."""

    def __call__(self, audio: object, *, language: str | None = None) -> Transcript:
        self.calls += 1
        words = (Word(5.5, 5.6, " Run"), Word(5.6, 5.7, " now."))
        return Transcript("en", 0.99, 6.0, (Segment(5.5, 5.7, "Run now.", words),))


def test_transcribe_writes_srt_vtt_json_through_the_run_cache(settings: Settings, video: Path, tmp_path: Path) -> None:
    asr = FakeASR()
    pipe = Pipeline(settings, asr=asr, translator=FakeTranslator(), tts=FakeTTS())
    seen: list[tuple[str, float, str | None]] = []
    result = pipe.transcribe(video, out_dir=tmp_path / "t", progress=lambda *event: seen.append(event))
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["clip.en.json", "clip.en.srt", "clip.en.vtt"]
    assert result.outputs == {k: tmp_path / "t" / f"clip.en.{k}" for k in ("srt", "vtt", "json")}
    doc = json.loads(result.outputs["json"].read_text())
    assert doc["language"] == "en" and [s["text"] for s in doc["sentences"]] == ["w0 w1 w2 w3 end.", "Second one."]
    assert [s.text for s in result.sentences] == ["w0 w1 w2 w3 end.", "Second one."] and result.cues
    assert [(s, f) for s, f, _ in seen if f == 0.0] == [("extract", 0.0), ("asr", 0.0), ("diarize", 0.0), ("segment", 0.0)]
    # the same cache as run(): the job reuses the transcription, and a second transcription needs no files
    pipe.run(JobRequest(input=str(video), target_languages=["ru"], mode="subtitles"), tmp_path / "out")
    again = pipe.transcribe(str(video))
    assert asr.calls == 1 and again.transcript == result.transcript and again.outputs == {}


def test_cues_never_outlast_the_media(settings: Settings, video: Path, tmp_path: Path) -> None:
    """The runner once laid cues out without the media's end (the /v1 path had it): a last line could
    be stretched to its minimum duration past the end of the video."""
    pipe = Pipeline(settings, asr=LateASR(), translator=FakeTranslator(), tts=FakeTTS())
    result = pipe.run(JobRequest(input=str(video), target_languages=["ru"], mode="subtitles"), tmp_path / "out")
    end = result.report["duration_s"]
    for name in ("clip.en.srt", "clip.ru.srt"):
        cues = pysubs2.load(str(tmp_path / "out" / name))
        assert len(cues) == 1 and cues[0].end / 1000 <= end + 1e-3, name
    assert pipe.transcribe(video).cues[-1].end_s <= end


def test_with_settings_shares_the_stages_under_other_settings(settings: Settings) -> None:
    """What re-dub runs through: the same stage objects, other settings (its translator never shortens)."""
    asr, translator, tts = FakeASR(), FakeTranslator(), FakeTTS()
    pipe = Pipeline(settings, asr=asr, translator=translator, tts=tts)
    verbatim = settings.model_copy(update={"translator": settings.translator.model_copy(update={"shorten_ratio": 0.0})})
    twin = pipe.with_settings(verbatim)
    assert twin.settings is verbatim and pipe.settings is settings
    assert twin.asr is asr and twin.translator is translator and twin.tts is tts
    assert Pipeline(settings).with_settings(verbatim)._tts is None  # a stage not loaded yet loads lazily, later


class FlaggingTranslator(FakeTranslator):
    """Line 0 keeps a translation that failed a soft check (issue 16), flagged ``flag``; line 1 is fine."""

    def __init__(self, flag: str) -> None:
        super().__init__()
        self.flag = flag

    def translate(self, sentences, *, source_language, target_language, glossary=None):  # type: ignore[no-untyped-def]
        out = super().translate(sentences, source_language=source_language, target_language=target_language)
        return [Translation(t.id, t.source, t.text, (self.flag,) if i == 0 else ()) for i, t in enumerate(out)]


@pytest.mark.parametrize("flag", ["latin_words", "foreign_script"])
def test_soft_check_flags_are_listed_in_the_report(flag: str, settings: Settings, video: Path, tmp_path: Path) -> None:
    pipe = Pipeline(settings, asr=FakeASR(), translator=FlaggingTranslator(flag), tts=FakeTTS())
    target = pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out").report["targets"]["ru"]
    assert target["quality_flagged"] == [target["sentences"][0]["id"]] and target["untranslated"] == []
    assert target["sentences"][0]["translation"].startswith("перевод")
