"""``translate``'s speaker flags (issue 15): --speakers, --min-speakers, --max-speakers and --speaker-voice build the
job's request; a bad value (0, 500, min above max, an unknown voice, a contradiction) is one line and a non-zero
exit before any work (no audio extracted, no output folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.errors import VTError
from pipelines.runner import Pipeline
from pipelines.schema import JobRequest
from tests.videotranslator.test_cli_inputs import cli, one_error_line
from videotranslator.cli import app


class Stop(VTError):
    code = "stop"


def invoke(tmp_path: Path, jfk_flac: Path, *args: str) -> Any:
    env = {"VT_STORAGE__CACHE_DIR": str(tmp_path / "cache"), "VT_MIX__BACKGROUND": "duck", "COLUMNS": "200"}
    return CliRunner().invoke(
        app, ["translate", str(jfk_flac), "--to", "en", "-o", str(tmp_path / "out"), *args], env=env
    )


def test_the_flags_reach_the_job_request(tmp_path: Path, jfk_flac: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[JobRequest] = []

    def run(self: Pipeline, request: JobRequest, out_dir: Path, **kwargs: Any) -> Any:
        seen.append(request)
        raise Stop("stopped here")

    monkeypatch.setattr(Pipeline, "run", run)
    result = invoke(tmp_path, jfk_flac, "--min-speakers", "2", "--max-speakers", "4", "--speaker-voice", "s2=espeak:en-us",
                    "--background", "none")  # fmt: skip
    assert result.exit_code != 0 and "stopped here" in result.output
    assert (seen[0].speakers, seen[0].min_speakers, seen[0].max_speakers) == (None, 2, 4)
    assert seen[0].speaker_voices == {"S2": "espeak:en-us"} and seen[0].background == "none"
    invoke(tmp_path, jfk_flac, "--speakers", "3")
    assert seen[1].speakers == 3 and seen[1].min_speakers is None and seen[1].speaker_voices == {}


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--speakers", "0"], "speakers"),
        (["--speakers", "500"], "speakers"),
        (["--max-speakers", "500"], "max_speakers"),
        (["--min-speakers", "5", "--max-speakers", "2"], "min_speakers (5) is more than max_speakers (2)"),
        (["--speakers", "5", "--max-speakers", "3"], "speakers=5 contradicts"),
        (["--speakers", "2", "--speaker-voice", "S3=espeak:en-us"], "a voice for S3 but speakers=2"),
        (["--speaker-voice", "S2=rhvoice:nobody"], "speaker S2: unknown voice 'rhvoice:nobody'"),
        (["--speaker-voice", "S2=rhvoice:irina"], "speaker S2: en: voice 'rhvoice:irina' speaks ru"),
        (["--speaker-voice", "bob=espeak:en-us"], "speakers are named S1..S20"),
        (["--speaker-voice", "S2"], "--speaker-voice must be SPEAKER=ENGINE:VOICE"),
        (["--background", "loud"], "background"),
    ],
)
def test_bad_speaker_flags_are_one_line_before_any_work(
    tmp_path: Path, jfk_flac: Path, args: list[str], match: str
) -> None:
    result = invoke(tmp_path, jfk_flac, *args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert match in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # not even the audio extracted


def test_a_bad_count_in_a_real_process(tmp_path: Path, jfk_flac: Path) -> None:
    """The installed entrypoint, not the in-process runner: stderr is the one line, no traceback."""
    out = tmp_path / "out"
    line = one_error_line(cli("translate", str(jfk_flac), "--to", "en", "--speakers", "0", "-o", str(out)))
    assert "speakers" in line and "greater than or equal to 1" in line and not out.exists()


@pytest.mark.parametrize(("name", "value", "words"), [("NAME_MIN_COUNT", "0", "greater than or equal to 1"),
                                                      ("RETRY_TOGETHER", "maybe", "boolean")])
def test_a_bad_translator_setting_is_one_line_before_any_work(tmp_path: Path, jfk_flac: Path, name: str, value: str,
                                                               words: str) -> None:
    """Issue 17's settings (translator.name_min_count, translator.retry_together) from the environment: a bad value
    is one line naming the setting, and nothing is written."""
    out = tmp_path / "out"
    proc = cli("translate", str(jfk_flac), "--to", "ru", "-o", str(out), **{f"VT_TRANSLATOR__{name}": value})
    line = one_error_line(proc)
    assert name.lower() in line and words in line and not out.exists()
