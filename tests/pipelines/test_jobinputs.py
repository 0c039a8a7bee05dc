"""The speaker and background rules every entrypoint shares (issue 15): counts, contradictions, per-speaker voices
against the real catalog and models folder, diarization off, and the separation model, each refused before any
work with its own error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from configs.settings import DiarizeSettings, Settings, StorageSettings
from pipelines import voices
from pipelines.errors import InvalidSpeakers, InvalidVoice, SeparationUnavailable
from pipelines.jobinputs import check_job_inputs, check_settings_inputs, parse_speaker_voice_pairs
from pipelines.schema import JobRequest

MODELS_DIR = StorageSettings().models_dir
DIARIZE = DiarizeSettings()


@pytest.fixture(scope="module")
def ru_voices() -> list[str]:
    """The default Russian voices, installed as `models pull` does (a no-op when already there)."""
    return voices.pull(MODELS_DIR, "ru")


def req(to: tuple[str, ...] = ("ru",), **fields: Any) -> JobRequest:
    return JobRequest(input="talk.mp4", target_languages=list(to), **fields)


def check(request: JobRequest, **kwargs: Any) -> JobRequest:
    return check_job_inputs(request, **{"diarize": DIARIZE, **kwargs})


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"min_speakers": 5, "max_speakers": 2}, r"min_speakers \(5\) is more than max_speakers \(2\)"),
        ({"speakers": 5, "max_speakers": 3}, r"speakers=5 contradicts min_speakers=-, max_speakers=3"),
        ({"speakers": 1, "min_speakers": 2}, r"speakers=1 contradicts min_speakers=2"),
        ({"speakers": 2, "speaker_voices": {"S3": "espeak:en-us"}}, r"a voice for S3 but speakers=2"),
        ({"speaker_voices": {"bob": "espeak:en-us"}}, r"'bob': speakers are named S1\.\.S20"),
        ({"speaker_voices": {"S21": "espeak:en-us"}}, r"S1\.\.S20"),
        ({"speaker_voices": {"S0": "espeak:en-us"}}, r"S1\.\.S20"),
    ],
)
def test_contradictions_are_invalid_speakers(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidSpeakers, match=match):
        check(req(**fields))


@pytest.mark.parametrize("count", [0, 500])
@pytest.mark.parametrize("name", ["speakers", "min_speakers", "max_speakers"])
def test_a_count_outside_1_to_20_is_refused(name: str, count: int) -> None:
    with pytest.raises(ValidationError, match="20|1"):  # the request itself (HTTP 422, -32602, the CLI's line)
        req(**{name: count})
    unchecked = req().model_copy(update={name: count})  # a request built around validation meets the same rule
    with pytest.raises(InvalidSpeakers, match=f"{name} must be between 1 and 20, got {count}"):
        check(unchecked)


def test_good_options_pass_with_canonical_labels_and_voice_ids(ru_voices: list[str]) -> None:
    assert check(req(speakers=2, speaker_voices={"S1": "espeak:ru"})).speaker_voices == {"S1": "espeak:ru"}
    request = req(min_speakers=2, max_speakers=4, speaker_voices={" s2 ": " rhvoice:irina ", "S1": "espeak:ru"})
    checked = check(request, models_dir=MODELS_DIR)
    assert checked.speaker_voices == {"S2": "rhvoice:irina", "S1": "espeak:ru"}
    assert (checked.min_speakers, checked.max_speakers) == (2, 4)
    assert check(req(speakers=3, min_speakers=2, max_speakers=3)).speakers == 3  # inside its own bounds


def test_a_speaker_voice_must_exist_be_installed_and_speak_every_target(ru_voices: list[str], tmp_path: Path) -> None:
    with pytest.raises(InvalidVoice, match=r"speaker S2: unknown voice 'rhvoice:nobody'"):
        check(req(speaker_voices={"S2": "rhvoice:nobody"}), models_dir=MODELS_DIR)
    with pytest.raises(InvalidVoice, match=r"speaker S2: es: voice 'rhvoice:irina' speaks ru, not 'es'"):
        check(req(to=("ru", "es"), speaker_voices={"S2": "rhvoice:irina"}), models_dir=MODELS_DIR)
    with pytest.raises(InvalidVoice, match=r"speaker S2: .*not installed; run `videotranslator voices pull"):
        check(req(speaker_voices={"S2": "rhvoice:irina"}), models_dir=tmp_path / "no-models")
    model = tmp_path / "voice.onnx"
    model.write_bytes(b"x")
    with pytest.raises(InvalidVoice, match="name a catalog voice"):  # from the network: never a server file
        check(req(speaker_voices={"S2": f"piper:{model}"}), models_dir=MODELS_DIR, allow_paths=False)
    subtitles = req(to=("es",), mode="subtitles", speaker_voices={"S2": "rhvoice:irina"})
    assert check(subtitles, models_dir=MODELS_DIR).speaker_voices == {"S2": "rhvoice:irina"}  # nothing is spoken


def test_speaker_options_need_diarization_on() -> None:
    off = DiarizeSettings(enabled=False)
    for fields in ({"speakers": 2}, {"max_speakers": 3}, {"speaker_voices": {"S1": "espeak:ru"}}):
        with pytest.raises(InvalidSpeakers, match=r"need diarization, which is off here \(settings diarize.enabled\)"):
            check(req(**fields), diarize=off)
    assert check(req(speakers=1), diarize=off).speakers == 1  # one speaker is what "off" means


def test_separation_without_its_model_says_how_to_install_it(tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    with pytest.raises(SeparationUnavailable, match=r"run `videotranslator models pull spleeter-2stems`"):
        check(req(), background="separate", models_dir=empty)
    with pytest.raises(SeparationUnavailable):
        check(req(background="separate"), background="duck", models_dir=empty)
    check(req(background="duck"), background="separate", models_dir=empty)  # the job's own choice wins
    check(req(mode="subtitles"), background="separate", models_dir=empty)  # no dub, nothing to separate
    check(req(), background="separate")  # no models folder given: the runner checks when the job starts


def test_the_settings_are_what_the_checks_read(tmp_path: Path) -> None:
    settings = Settings(_env_file=None)
    settings.storage.models_dir = tmp_path / "no-models"
    settings.mix.background = "none"
    settings.tts.speaker_voices = {"S2": "rhvoice:nobody"}
    with pytest.raises(InvalidVoice, match="rhvoice:nobody"):
        check_settings_inputs(settings, req())
    settings.tts.speaker_voices = {}
    settings.diarize.enabled = False
    with pytest.raises(InvalidSpeakers, match="diarization"):
        check_settings_inputs(settings, req(speakers=2))
    settings.mix.background = "separate"
    with pytest.raises(SeparationUnavailable):
        check_settings_inputs(settings, req())


def test_speaker_voice_pairs() -> None:
    assert parse_speaker_voice_pairs(["s2=rhvoice:irina", "S1 = espeak:ru"]) == {
        "S2": "rhvoice:irina",
        "S1": "espeak:ru",
    }
    for bad in ("S2", "S2=irina", "=rhvoice:irina"):
        with pytest.raises(InvalidSpeakers, match=r"--speaker-voice must be SPEAKER=ENGINE:VOICE"):
            parse_speaker_voice_pairs([bad])
    with pytest.raises(InvalidSpeakers, match="speakers are named"):
        parse_speaker_voice_pairs(["bob=espeak:en-us"])
