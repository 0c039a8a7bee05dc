"""The batch command's contract without Ray: its entrypoints, and a setup error is exit code 125 before Ray starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from configs.settings import Settings
from pipelines.batch import cli
from tests.pipelines.batch.conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("entry", [["-m", "pipelines.batch"], ["-m", "videotranslator.cli", "batch"]])
def test_both_entrypoints_reach_the_batch_command(entry: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "VT_LOG_DIR": str(tmp_path / "log")}
    helped = subprocess.run([sys.executable, *entry, "--help"], capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert helped.returncode == 0 and "--input" in helped.stdout and "python -m pipelines.batch" in helped.stdout
    args = ["--input", str(tmp_path / "missing"), "--to", "ru", "--output", str(tmp_path / "out")]
    failed = subprocess.run([sys.executable, *entry, *args], capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert failed.returncode == cli.SETUP_ERROR, failed.stderr
    assert failed.stderr.startswith("error: cannot list") and "Ray instance" not in failed.stderr  # before Ray started


def test_setup_errors_exit_125(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = Settings(_env_file=None)
    s.LOG_DIR = tmp_path / "log"
    (tmp_path / "empty").mkdir()
    out = str(tmp_path / "out")
    assert cli.main(["--input", str(tmp_path / "empty"), "--to", "ru", "--output", out], settings=s) == cli.SETUP_ERROR
    assert "no media files" in capsys.readouterr().err
    (tmp_path / "empty" / "a.mp4").write_bytes(b"x")
    assert cli.main(["--input", str(tmp_path / "empty"), "--to", "ru,xx", "--output", out], settings=s) == cli.SETUP_ERROR
    assert "unknown language code 'xx'" in capsys.readouterr().err
    spec = write_jsonl(tmp_path / "m.jsonl", {"input": "a.mp4", "mode": "karaoke"})
    assert cli.main(["--input", str(spec), "--to", "ru", "--output", out], settings=s) == cli.SETUP_ERROR
    assert not (tmp_path / "out").exists()  # nothing written before the batch could start
    spec = write_jsonl(tmp_path / "v.jsonl", {"input": "a.mp4", "speaker_voices": {"S2": "rhvoice:nobody"}})
    assert cli.main(["--input", str(spec), "--to", "ru", "--output", out], settings=s) == cli.SETUP_ERROR
    assert "v.jsonl:1: speaker S2: unknown voice 'rhvoice:nobody'" in capsys.readouterr().err
    s.storage.models_dir = tmp_path / "no-models"  # the settings' own rules: mix.background=separate, no model
    assert cli.main(["--input", str(tmp_path / "empty"), "--to", "ru", "--output", out], settings=s) == cli.SETUP_ERROR
    assert "models pull spleeter-2stems" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_jobs_carry_canonical_languages_and_the_glossary(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x")
    glossary = tmp_path / "g.txt"
    glossary.write_text("Ask = Спроси\n", encoding="utf-8")
    args = cli.parse_args(["--input", str(tmp_path), "--to", "RU,es-ES", "--from", "EN", "--output", "o", "--glossary", str(glossary)])
    (job,) = cli.read_jobs(args, Settings(_env_file=None))
    assert (job.target_languages, job.source_language, job.mode) == (["ru", "es"], "en", "dub")
    assert job.glossary == {"Ask": "Спроси"}
