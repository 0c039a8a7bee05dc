"""`translate --voice` builds the job's ``voices`` (the one JobRequest path, issue 14): the report names the voice per
language and per sentence, and the settings' voices are not touched. A subtitle file alone into its own language:
no ASR, no LLM, real espeak-ng and ffmpeg."""

from __future__ import annotations

import json
from pathlib import Path

from tests.videotranslator.test_cli import run_cli

SRT = """1
00:00:00,500 --> 00:00:02,000
Good morning, everyone.

2
00:00:02,500 --> 00:00:04,500
The weather is cold today.
"""


def test_voice_flag_is_the_jobs_voice_in_the_report(tmp_path: Path) -> None:
    srt = tmp_path / "talk.en.srt"
    srt.write_text(SRT, encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli("translate", str(srt), "--to", "en", "--mode", "dub", "--voice", "EN=espeak:en-gb", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "talk.report.json").read_text(encoding="utf-8"))
    target = report["targets"]["en"]
    assert target["voice"] == "espeak:en-gb" and target["voice_info"]["chosen_by"] == "job"
    assert [row["voice"] for row in target["sentences"]] == ["espeak:en-gb", "espeak:en-gb"]
    assert (out / "talk.en.m4a").stat().st_size > 1000
