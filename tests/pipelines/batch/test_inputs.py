"""The input list: a folder of media files, or a manifest.jsonl with per-line overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.batch.inputs import read_inputs
from pipelines.errors import UnknownLanguage
from pipelines.schema import JobRequest
from tests.pipelines.batch.conftest import write_jsonl

DEFAULTS = JobRequest(input="-", target_languages=["ru"], mode="subtitles")


def test_a_folder_gives_its_media_files_by_name_with_absolute_paths(tmp_path: Path) -> None:
    (tmp_path / "b.mp4").write_bytes(b"x")
    (tmp_path / "a.mkv").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    jobs = read_inputs(str(tmp_path), DEFAULTS)
    assert [Path(j.input).name for j in jobs] == ["a.mkv", "b.mp4"] and all(Path(j.input).is_absolute() for j in jobs)
    assert all(j.target_languages == ["ru"] and j.mode == "subtitles" for j in jobs)


def test_a_manifest_overrides_per_line_with_canonical_languages(tmp_path: Path) -> None:
    spec = write_jsonl(
        tmp_path / "m.jsonl",
        {"input": "b.mp4", "to": "EN, de-DE,en", "mode": "dub"},
        {"input": "/abs/c.mp4", "from": "RU"},
        {"input": "d.mp4", "from": None},
    )
    with spec.open("a") as fh:
        fh.write("# a comment\n\nplain.mp4\n")
    jobs = read_inputs(str(spec), DEFAULTS.model_copy(update={"source_language": "en"}))
    assert jobs[0].input == str(tmp_path / "b.mp4") and jobs[0].target_languages == ["en", "de"] and jobs[0].mode == "dub"
    assert jobs[1].input == "/abs/c.mp4" and jobs[1].source_language == "ru" and jobs[1].target_languages == ["ru"]
    assert jobs[2].source_language is None  # null: detect, whatever the defaults say
    assert jobs[3].input == str(tmp_path / "plain.mp4") and jobs[3].source_language == "en"


def test_remote_manifests_resolve_relative_lines_under_their_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.batch import inputs

    monkeypatch.setattr(inputs.uris, "read_text", lambda uri: '{"input": "a.mp4"}\n/local/b.mp4\ns3://other/c.mp4\n')
    jobs = read_inputs("s3://bucket/in/m.jsonl", DEFAULTS)
    assert [j.input for j in jobs] == ["s3://bucket/in/a.mp4", "/local/b.mp4", "s3://other/c.mp4"]


def test_bad_lines_name_the_manifest_line(tmp_path: Path) -> None:
    spec = write_jsonl(tmp_path / "m.jsonl", {"input": "a.mp4"}, {"input": "b.mp4", "to": "xx"})
    with pytest.raises(UnknownLanguage, match=r"m\.jsonl:2: unknown language code 'xx'"):
        read_inputs(str(spec), DEFAULTS)
    spec = write_jsonl(tmp_path / "n.jsonl", {"to": "ru"})
    with pytest.raises(ValueError, match=r"n\.jsonl:1: a line needs an 'input'"):
        read_inputs(str(spec), DEFAULTS)


def test_a_manifest_line_carries_its_speaker_and_background_options(tmp_path: Path) -> None:
    spec = write_jsonl(
        tmp_path / "m.jsonl",
        {"input": "panel.mp4", "speakers": 3, "speaker_voices": {"S2": "espeak:ru"}, "background": "duck"},
        {"input": "talk.mp4", "min_speakers": 2, "max_speakers": 4},
        {"input": "plain.mp4"},
    )
    panel, talk, plain = read_inputs(str(spec), DEFAULTS)
    assert (panel.speakers, panel.speaker_voices, panel.background) == (3, {"S2": "espeak:ru"}, "duck")
    assert (talk.min_speakers, talk.max_speakers, talk.speakers) == (2, 4, None)
    assert (plain.speakers, plain.min_speakers, plain.speaker_voices, plain.background) == (None, None, {}, None)


def test_a_bad_speaker_option_names_its_manifest_line(tmp_path: Path) -> None:
    """The batch's ``check`` (pipelines.jobinputs, as the CLI wires it) and the request's own bounds."""
    from configs.settings import DiarizeSettings
    from pipelines.errors import InvalidSpeakers
    from pipelines.jobinputs import check_job_inputs

    def check(job: JobRequest) -> JobRequest:
        return check_job_inputs(job, diarize=DiarizeSettings())

    bad = {"input": "b.mp4", "min_speakers": 5, "max_speakers": 2}
    spec = write_jsonl(tmp_path / "m.jsonl", {"input": "a.mp4"}, bad)
    with pytest.raises(InvalidSpeakers, match=r"m\.jsonl:2: min_speakers \(5\) is more than max_speakers \(2\)"):
        read_inputs(str(spec), DEFAULTS, check=check)
    spec = write_jsonl(tmp_path / "n.jsonl", {"input": "a.mp4", "speakers": 500})
    with pytest.raises(ValueError, match=r"n\.jsonl:1: speakers: Input should be less than or equal to 20"):
        read_inputs(str(spec), DEFAULTS, check=check)
