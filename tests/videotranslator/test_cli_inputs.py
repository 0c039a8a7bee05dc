"""The CLI with the other input kinds (issue 18), end to end with the real translator: a URL served by a local
HTTP server with --source-subtitles, an SRT alone, and their one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pysubs2
import pytest

from tests.videotranslator.test_cli import CYRILLIC

CLI = [sys.executable, "-m", "videotranslator.cli"]
SRT = """1
00:00:00,300 --> 00:00:02,000
Good morning, my friends.

2
00:00:02,400 --> 00:00:04,200
The weather is very nice today.

3
00:00:04,500 --> 00:00:06,000
Thank you very much.
"""


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "COLUMNS": "200", **env})  # fmt: skip


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.slow
def test_a_url_with_source_subtitles(media_server: Any, tmp_path: Path) -> None:
    """The video comes over HTTP (allow-listed local server), the transcript from the SRT: ASR never runs, and
    every cue is translated."""
    srt = tmp_path / "talk.en.srt"
    srt.write_text(SRT, encoding="utf-8")
    out = tmp_path / "out"
    proc = cli("translate", media_server.url("/talk.mp4"), "--source-subtitles", str(srt), "--to", "ru",
               "--mode", "subtitles", "-o", str(out), VT_FETCH__ALLOW_HOSTS="127.0.0.1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "talk.report.json").read_text(encoding="utf-8"))
    assert "asr" not in report["timings_s"] and {"fetch", "subtitles", "translate"} <= set(report["timings_s"])
    rows = report["targets"]["ru"]["sentences"]
    assert [r["source"] for r in rows] == ["Good morning, my friends.", "The weather is very nice today.", "Thank you very much."]
    assert all(CYRILLIC.search(r["translation"]) for r in rows) and report["targets"]["ru"]["untranslated"] == []
    assert report["source_subtitles"]["timing_rough"] is True  # the 3 s video ends before the last cues
    assert "past the media's end" in proc.stderr  # said as a note
    assert report["fetch"]["url"] == media_server.url("/talk.mp4")


@pytest.mark.slow
def test_an_srt_alone_keeps_cue_count_and_timing(tmp_path: Path) -> None:
    srt = tmp_path / "talk.en.srt"
    srt.write_text(SRT, encoding="utf-8")
    out = tmp_path / "out"
    proc = cli("translate", str(srt), "--to", "ru", "--mode", "subtitles", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["talk.report.json", "talk.ru.srt", "talk.ru.vtt"]
    source, translated = pysubs2.load(str(srt)), pysubs2.load(str(out / "talk.ru.srt"))
    assert [(e.start, e.end) for e in translated] == [(e.start, e.end) for e in source]
    assert all(CYRILLIC.search(e.plaintext) for e in translated)


@pytest.mark.parametrize(
    ("url", "needle"),
    [("file:///etc/passwd", "only http and https"), ("ftp://127.0.0.1/talk.mp4", "only http and https"),
     ("http://127.0.0.1:9/talk.mp4", "127.0.0.1"), ("http://169.254.169.254/latest/meta-data", "169.254.169.254")],
)  # fmt: skip
def test_refused_urls_are_one_line_errors(url: str, needle: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    line = one_error_line(cli("translate", url, "--to", "ru", "-o", str(out)))
    assert needle in line and not out.exists()


def test_a_download_over_the_size_cap_is_one_line_and_leaves_nothing(media_server: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = cli("translate", media_server.url("/endless.mp4?cli"), "--to", "ru", "-o", str(tmp_path / "out"),
               VT_FETCH__ALLOW_HOSTS="127.0.0.1", VT_MAX_FILE_SIZE="1000000", VT_STORAGE__CACHE_DIR=str(cache))  # fmt: skip
    assert "MAX_FILE_SIZE" in one_error_line(proc)
    assert not [p for p in cache.rglob("*") if p.is_file()] and not (tmp_path / "out").exists()


def test_a_malformed_srt_is_one_line_naming_the_line(tmp_path: Path) -> None:
    srt = tmp_path / "broken.srt"
    srt.write_text(SRT.replace("00:00:02,400 --> 00:00:04,200", "00:00:02,400 --> 00:00:04"), encoding="utf-8")
    line = one_error_line(cli("translate", str(srt), "--to", "ru", "--from", "en", "-o", str(tmp_path / "out")))
    assert "broken.srt line 6" in line
