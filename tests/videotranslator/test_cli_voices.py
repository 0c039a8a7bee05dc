"""`videotranslator voices list|pull` and `translate --voice` (issue 14, first slice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.videotranslator.test_cli import run_cli


def test_voices_list_shows_the_catalog_with_licences_and_the_default() -> None:
    proc = run_cli("voices", "pull", "--lang", "ru")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("voices", "list", "--lang", "ru")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert {"rhvoice:aleksandr", "rhvoice:anna", "rhvoice:elena", "rhvoice:irina", "espeak:ru"} <= {
        line.split()[1] for line in lines
    }
    [default] = [line for line in lines if " default " in line]
    assert default.startswith("installed") and "rhvoice:" in default and "LGPL-2.1+" in default
    assert "Debian bookworm non-free" in default
    assert not [line for line in lines if "artemiy" in line or "victoria" in line]


def test_voices_list_shows_the_kokoro_voices_for_each_language_they_speak() -> None:
    proc = run_cli("voices", "pull", "--lang", "ja")
    assert proc.returncode == 0, proc.stderr
    assert {f"kokoro:{v}" for v in ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")} <= {
        line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ok")
    }
    proc = run_cli("voices", "list", "--lang", "ja")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[1]: line for line in proc.stdout.splitlines()}
    assert all(rows[f"kokoro:{v}"].startswith("installed") for v in ("jf_alpha", "jm_kumo"))
    [default] = [line for line in rows.values() if " default " in line]
    assert default.split()[1].startswith("kokoro:") and "Apache-2.0" in default and "CER ja" not in default
    proc = run_cli("voices", "list")  # without --lang: one row a voice, its CER per language
    assert proc.returncode == 0, proc.stderr
    [kumo] = [line for line in proc.stdout.splitlines() if line.split()[1] == "kokoro:jm_kumo"]
    assert "ja,es,it,pt,fr" in kumo and "CER ja" in kumo


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--voice", "ru=rhvoice:artemiy"], "unknown voice 'rhvoice:artemiy'"),
        (["--voice", "ru=nope:x"], "unknown voice 'nope:x'"),
        (["--voice", "rhvoice:irina"], "--voice must be LANG=ENGINE:VOICE"),
    ],
)
def test_unknown_voice_is_a_one_line_error_before_any_work(args: list[str], needle: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("translate", str(tmp_path / "never-read.mp4"), "--to", "ru", *args, "-o", str(out))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and needle in lines[0], lines[0]
    assert not out.exists()
