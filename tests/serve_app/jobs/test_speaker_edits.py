"""plan_speakers: a re-dub's speaker edits checked against a report (the real voice catalog and models folder)."""

from __future__ import annotations

from typing import Any

import pytest

from configs.settings import StorageSettings
from pipelines.errors import InvalidVoice
from serve_app.errors import InvalidEdit
from serve_app.jobs.speaker_edits import plan_speakers

MODELS_DIR = StorageSettings().models_dir
ESPEAK = "espeak:ru"


def _report(
    speaker_voices: dict[str, str] | None, labels: tuple[str | None, ...] = ("S1", "S2", "S1")
) -> dict[str, Any]:
    rows = [{"id": i, "speaker": s, "translation": f"t{i}", "voice": "x"} for i, s in enumerate(labels)]
    known = sorted({s for s in labels if s})
    return {
        "speakers": {"count": len(known), "speakers": [{"id": s} for s in known]} if known else None,
        "targets": {"ru": {"sentences": rows, "voice": ESPEAK, "speaker_voices": speaker_voices}},
    }


def test_only_real_changes_count_and_every_assignment_is_pinned() -> None:
    report = _report({"S1": ESPEAK, "S2": f"{ESPEAK}|pitch=-3"})
    plan = plan_speakers(report, "ru", {1: "S1", 2: "S1"}, {"S1": ESPEAK}, MODELS_DIR)
    assert plan.speaker_edits == {1: "S1"} and plan.voice_edits == {} and plan.changed == [1]
    assert plan.speakers == {0: "S1", 1: "S1", 2: "S1"}
    assert plan.voices == {"S1": ESPEAK, "S2": f"{ESPEAK}|pitch=-3"}  # the pitch-shifted copy kept as it is
    spec = plan.spec()
    assert spec["speakers"] == {"0": "S1", "1": "S1", "2": "S1"} and spec["speaker_edits"] == {"1": "S1"}
    assert spec["voice_edits"] == {}

    nothing = plan_speakers(report, "ru", {1: "S2"}, {"S2": f"{ESPEAK}|pitch=-3"}, MODELS_DIR)
    assert nothing.changed == [] and "speaker_edits" not in nothing.spec()


def test_a_voice_change_redubs_that_speakers_sentences_and_the_moved_ones() -> None:
    from pipelines import voices

    voices.pull(MODELS_DIR, "ru")
    report = _report(None)  # one voice for all: each speaker has the language's voice
    plan = plan_speakers(report, "ru", {2: "S2"}, {"S1": "rhvoice:anna", "S2": ESPEAK}, MODELS_DIR)
    assert plan.voice_edits == {"S1": "rhvoice:anna"}  # S2's is the language's voice already
    assert plan.changed == [0, 2]  # S1's sentence and the one moved to S2
    assert plan.voices == {"S1": "rhvoice:anna"} and plan.speakers == {0: "S1", 1: "S2", 2: "S2"}


@pytest.mark.parametrize(
    ("speakers", "voices_", "error", "match"),
    [
        ({0: "S3"}, None, InvalidEdit, "no speaker 'S3' in this job \\(it has S1, S2\\)"),
        ({7: "S1"}, None, InvalidEdit, "no sentence 7"),
        (None, {"S9": ESPEAK}, InvalidEdit, "no speaker 'S9'"),
        (None, {"S1": "kokoro:nobody"}, InvalidVoice, "unknown voice"),
        (None, {"S1": "espeak"}, InvalidVoice, "ENGINE:VOICE"),
        (None, {"S1": "piper:bundled:en_US-joe-medium"}, InvalidVoice, "ru"),
    ],
)
def test_bad_edits_are_refused(speakers: Any, voices_: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        plan_speakers(_report(None), "ru", speakers, voices_, MODELS_DIR)


def test_a_job_without_speakers_has_none_to_edit() -> None:
    with pytest.raises(InvalidEdit, match="not told apart"):
        plan_speakers(_report(None, (None, None)), "ru", {0: "S1"}, None, MODELS_DIR)


def test_a_subtitles_only_target_has_no_voice_to_change() -> None:
    report = _report(None)
    report["targets"]["ru"]["voice"] = None
    with pytest.raises(InvalidEdit, match="subtitles only"):
        plan_speakers(report, "ru", None, {"S1": ESPEAK}, MODELS_DIR)
    assert plan_speakers(report, "ru", {1: "S1"}, None, MODELS_DIR).changed == [1]  # who says it still shows
