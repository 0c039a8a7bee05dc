"""A job's own voices (``JobRequest.voices``, issue 14 items 3 and 5): checked before any work, used for that job
only, named in the report per language and per sentence; and the timing fit with a slower voice (item 6).

Real TTS (espeak-ng, RHVoice), real ffmpeg; the ASR and the translator are the runner tests' fakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.settings import Settings, StorageSettings
from pipelines import voices
from pipelines.errors import InvalidVoice
from pipelines.jobvoices import check_job_voices, parse_voice_pairs
from pipelines.runner import Pipeline
from pipelines.schema import JobRequest, Translation
from tests.pipelines.test_runner import FakeASR, FakeTranslator

MODELS_DIR = StorageSettings().models_dir


@pytest.fixture(scope="module")
def ru_voices() -> list[str]:
    """The default Russian voices, installed as `models pull` does (a no-op when already there)."""
    return voices.pull(MODELS_DIR, "ru")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    s = Settings(_env_file=None)
    s.storage.cache_dir = tmp_path / "cache"
    s.tts.voices = {"es": "espeak:es"}
    return s


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, test_mp3: Path) -> Path:
    from tests.conftest import make_video

    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", test_mp3, 6.0)


def test_job_voices_are_normalised_and_checked(ru_voices: list[str]) -> None:
    assert check_job_voices({"RU-ru": " rhvoice:irina ", "es": "espeak:es-419"}, MODELS_DIR) == {
        "ru": "rhvoice:irina", "es": "espeak:es-419",
    }  # fmt: skip
    assert check_job_voices({}, MODELS_DIR) == {}
    assert parse_voice_pairs(["ru=rhvoice:irina", "ES = espeak:es"]) == {"ru": "rhvoice:irina", "es": "espeak:es"}


@pytest.mark.parametrize(
    ("chosen", "needle"),
    [
        ({"ru": "rhvoice:artemiy"}, "ru: unknown voice 'rhvoice:artemiy'"),  # CC-BY-NC-ND: never in the catalog
        ({"ru": "nope:x"}, "unknown voice 'nope:x'"),
        ({"ru": "irina"}, "ENGINE:VOICE"),
        ({"de": "espeak:no-such-voice"}, "espeak-ng has no voice"),
        ({"es": "rhvoice:irina"}, "speaks ru, not 'es'"),  # a catalog voice of another language
        ({"xx": "espeak:de"}, "unknown language code 'xx'"),
        ({"ru": 5}, "must be a string"),
    ],
)
def test_a_bad_job_voice_is_refused_with_one_line(ru_voices: list[str], chosen: dict, needle: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidVoice, match=needle.replace("(", r"\(")) as info:
        check_job_voices(chosen, MODELS_DIR)
    assert "\n" not in info.value.message and info.value.http_status == 422


def opt_in_voice(monkeypatch: pytest.MonkeyPatch) -> str:
    """A Russian opt-in catalog voice that is not installed (as mbrola's are until pulled on purpose)."""
    from dataclasses import replace

    voice = replace(voices.CATALOG["rhvoice:irina"], id="rhvoice:optin-test", folder="optin-test", opt_in=True,
                    commercial_ok=False, licence="non-commercial (test)")  # fmt: skip
    monkeypatch.setitem(voices.CATALOG, voice.id, voice)
    return voice.id


def test_an_opt_in_voice_is_refused_until_installed_on_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    voice = opt_in_voice(monkeypatch)
    with pytest.raises(
        InvalidVoice, match=f"ru: voice '{voice}' is not installed; run `videotranslator voices pull --opt-in {voice}`"
    ):
        check_job_voices({"ru": voice}, MODELS_DIR)


def test_a_voice_not_installed_is_refused_and_paths_only_from_trusted_callers(tmp_path: Path) -> None:
    with pytest.raises(InvalidVoice, match="not installed; run `videotranslator voices pull --lang ru`"):
        check_job_voices({"ru": "rhvoice:irina"}, tmp_path / "empty-models")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    assert check_job_voices({"en": f"piper:{model}"}, MODELS_DIR) == {"en": f"piper:{model}"}  # the CLI's user
    with pytest.raises(InvalidVoice, match="name a catalog voice"):  # a request from the network
        check_job_voices({"en": f"piper:{model}"}, MODELS_DIR, allow_paths=False)


def test_job_voices_override_settings_for_that_job_only(settings: Settings, video: Path, tmp_path: Path) -> None:
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator())  # the real TTS stage (espeak-ng)
    request = JobRequest(input=str(video), target_languages=["es", "fi"], voices={"ES": "espeak:es-419"})
    report = pipe.run(request, tmp_path / "a").report
    es, fi = report["targets"]["es"], report["targets"]["fi"]  # Finnish: no catalog voice, espeak-ng speaks
    assert es["voice"] == "espeak:es-419" and report["models"]["tts"] == {"es": "espeak:es-419", "fi": "espeak:fi"}
    assert es["voice_info"]["chosen_by"] == "job" and fi["voice_info"]["chosen_by"] == "configured"
    assert fi["voice_info"]["fallback"] is True and "GPL" in fi["voice_info"]["licence"]
    assert [r["voice"] for r in es["sentences"]] == ["espeak:es-419"] * 2
    assert [r["voice"] for r in fi["sentences"]] == ["espeak:fi"] * 2
    # The settings are untouched: the next job without voices speaks the configured voice.
    assert settings.tts.voices == {"es": "espeak:es"}
    again = pipe.run(JobRequest(input=str(video), target_languages=["es"]), tmp_path / "b").report
    assert (
        again["targets"]["es"]["voice"] == "espeak:es"
        and again["targets"]["es"]["voice_info"]["chosen_by"] == "configured"
    )


def test_a_catalog_voice_per_job_speaks_and_is_named(
    ru_voices: list[str], settings: Settings, video: Path, tmp_path: Path
) -> None:
    settings.tts.voices = {"ru": "espeak:ru"}
    pipe = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator())
    report = pipe.run(
        JobRequest(input=str(video), target_languages=["ru"], voices={"ru": "rhvoice:anna"}), tmp_path / "o"
    ).report
    ru = report["targets"]["ru"]
    assert ru["voice"] == "rhvoice:anna" and {r["voice"] for r in ru["sentences"]} == {"rhvoice:anna"}
    assert ru["voice_info"] == {
        "id": "rhvoice:anna", "engine": "rhvoice", "licence": "LGPL-2.1+", "opt_in": False, "fallback": False,
        "chosen_by": "job",
    }  # fmt: skip
    assert ru["resynthesized"] == 2 and ru["fit"]["clips"] == 2


def test_a_bad_voice_fails_before_any_work(settings: Settings, video: Path, tmp_path: Path) -> None:
    asr = FakeASR()
    pipe = Pipeline(settings, asr=asr, translator=FakeTranslator())
    with pytest.raises(InvalidVoice, match="unknown voice 'rhvoice:nobody'"):
        pipe.run(JobRequest(input=str(video), target_languages=["ru"], voices={"ru": "rhvoice:nobody"}), tmp_path / "o")
    # Even with a subtitles-only job (the voice would never speak) and an input that does not exist.
    with pytest.raises(InvalidVoice):
        request = JobRequest(input=str(tmp_path / "missing.mp4"), target_languages=["ru"], mode="subtitles",
                             voices={"ru": "nope:x"})  # fmt: skip
        pipe.run(request, tmp_path / "o")
    assert asr.calls == 0 and not (tmp_path / "o").exists()


class WordyTranslator(FakeTranslator):
    """Lines about twice as long as their slots take to say; ``shorten`` gives a short one."""

    def translate(self, sentences, *, source_language, target_language, glossary=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        text = "Это довольно длинный перевод, который занимает гораздо больше времени, чем исходная фраза"
        return [Translation(s.id, s.text, f"{text} {s.id}.") for s in sentences]


@pytest.mark.parametrize("voice", ["espeak:ru@slow", "rhvoice:irina"])
def test_timing_still_fits_with_a_slower_voice(
    ru_voices: list[str], voice: str, settings: Settings, video: Path, tmp_path: Path
) -> None:
    """Item 6: a slower voice makes longer clips; speeds stay within fit.max_speed, the overflow is reported,
    and the shortening step still rescues the lines."""
    if voice == "espeak:ru@slow":
        settings.tts.espeak_rate_wpm = 90  # about half espeak-ng's usual pace
        voice = "espeak:ru"
    cap = settings.fit.max_speed

    def run(shorten_ratio: float, out: str) -> dict:  # type: ignore[type-arg]
        settings.translator.shorten_ratio = shorten_ratio
        pipe = Pipeline(settings, asr=FakeASR(), translator=WordyTranslator())
        request = JobRequest(input=str(video), target_languages=["ru"], voices={"ru": voice})
        return pipe.run(request, tmp_path / out).report["targets"]["ru"]  # type: ignore[no-any-return]

    long = run(0.0, "long")
    assert long["voice"] == voice
    speeds = [r["speed"] for r in long["sentences"]]
    assert all(1.0 <= s <= cap + 1e-6 for s in speeds), speeds
    assert long["fit"]["max_speed"] <= cap + 1e-6 and long["fit"]["overflow_count"] >= 1
    assert any("overflow" in r["flags"] for r in long["sentences"])

    short = run(0.1, "short")
    assert all("shortened" in r["flags"] for r in short["sentences"]) and short["resynthesized"] >= 2
    assert all(r["translation"] == "коротко" and r["voice"] == voice for r in short["sentences"])
    assert all(1.0 <= r["speed"] <= cap + 1e-6 for r in short["sentences"])
    assert short["fit"]["total_overflow_s"] < long["fit"]["total_overflow_s"]


def test_a_slower_espeak_rate_is_another_clip_not_a_cached_one(tmp_path: Path) -> None:
    """The clip cache keys espeak-ng's rate too: a slowed voice is never served the clips of the usual pace."""
    from configs.settings import TTSSettings
    from pipelines.tts import TTSStage

    line = [Translation(0, "x", "Это довольно длинный перевод, который занимает много времени.")]
    usual = TTSStage(TTSSettings(voices={}), MODELS_DIR, cache_dir=tmp_path)(line, "ru", "espeak:ru")[0]
    slow_stage = TTSStage(TTSSettings(voices={}, espeak_rate_wpm=90), MODELS_DIR, cache_dir=tmp_path)
    slow = slow_stage(line, "ru", "espeak:ru")[0]
    assert slow_stage.synthesized_count == 1 and slow.duration_s > 1.5 * usual.duration_s


def test_a_jobs_openai_voice_on_a_dead_server_fails_before_any_work(
    settings: Settings, video: Path, tmp_path: Path
) -> None:
    from pipelines.errors import ModelError

    settings.tts.openai.base_url = "http://127.0.0.1:9/v1"  # nothing listens there
    asr = FakeASR()
    pipe = Pipeline(settings, asr=asr, translator=FakeTranslator())
    request = JobRequest(input=str(video), target_languages=["de"], voices={"de": "openai:alloy"})
    with pytest.raises(ModelError):
        pipe.run(request, tmp_path / "o")
    assert asr.calls == 0 and not (tmp_path / "o").exists()
