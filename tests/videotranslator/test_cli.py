"""The CLI end to end with real models, and every bad-input case from the issue."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pysubs2
import pytest

from pipelines.fileio import file_mode
from tests.conftest import make_video

CLI = [sys.executable, "-m", "videotranslator.cli"]
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)


def ffprobe_streams(path: Path) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)["streams"], float(json.loads(out.stdout)["format"]["duration"])


@pytest.fixture(scope="module")
def translated(jfk_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CLI run to ru and es (the models load once for both targets)."""
    out = tmp_path_factory.mktemp("out")
    proc = run_cli("translate", str(jfk_video), "--to", "ru,es", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["ru", "es"])
def test_translate_outputs(translated: Path, jfk_video: Path, lang: str) -> None:
    mp4 = translated / f"jfk.{lang}.mp4"
    streams, duration = ffprobe_streams(mp4)
    kinds = [s["codec_type"] for s in streams]
    assert kinds.count("video") == 1 and kinds.count("audio") == 2 and kinds.count("subtitle") == 2
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert audio[0]["disposition"]["default"] == 1 and audio[1]["disposition"]["default"] == 0
    iso = {"ru": "rus", "es": "spa"}[lang]
    assert audio[0]["tags"]["language"] == iso and audio[1]["tags"]["language"] == "eng"
    assert abs(duration - 13.0) < 0.1
    srt = pysubs2.load(str(translated / f"jfk.{lang}.srt"))
    vtt = pysubs2.load(str(translated / f"jfk.{lang}.vtt"))
    assert len(srt) >= 1 and len(srt) == len(vtt)
    assert len(pysubs2.load(str(translated / "jfk.en.srt"))) >= 1
    report = json.loads((translated / "jfk.report.json").read_text())
    assert report["source_language"] == "en"
    rows = report["targets"][lang]["sentences"]
    assert rows and rows[0]["start_s"] < 1.0 and rows[-1]["end_s"] > 9.5  # sentences cover the speech
    assert not report["targets"][lang]["untranslated"]
    if lang == "ru":
        assert all(CYRILLIC.search(r["translation"]) for r in rows)
    assert set(report["timings_s"]) >= {"extract", "asr", "translate", "tts", "mux", "total"}
    assert not [p for p in translated.iterdir() if p.name.startswith(".")]  # no staging left
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in translated.iterdir()}
    assert set(modes.values()) == {oct(file_mode())}, modes  # the umask's mode (0o644 under 022), not mkstemp's 0o600


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["ru", "es"])
def test_dubbed_track_speaks_the_target_language(translated: Path, lang: str, tmp_path: Path) -> None:
    """Re-transcribe the dubbed track with the same ASR forced to the target language."""
    from configs.settings import Settings
    from pipelines.asr import WhisperASR
    from pipelines.media import decode_audio

    samples = decode_audio(translated / f"jfk.{lang}.mp4", sample_rate_hz=16000, stream="0:a:0")
    s = Settings(_env_file=None)
    text = " ".join(seg.text for seg in WhisperASR(s.asr, s.storage.models_dir)(samples, language=lang).segments)
    words = re.findall(r"\w+", text.lower())
    assert len(words) >= 5, text
    if lang == "ru":
        assert sum(bool(CYRILLIC.search(w)) for w in words) / len(words) > 0.6, text
    else:
        english = {"ask", "not", "what", "your", "country", "can", "do", "for", "you", "fellow", "americans", "and", "so", "my"}
        assert sum(w in english for w in words) / len(words) < 0.4, text


@pytest.mark.slow
def test_transcribe_command(jfk_flac: Path, tmp_path: Path) -> None:
    proc = run_cli("transcribe", str(jfk_flac), "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "jfk.en.json").read_text())
    assert doc["language"] == "en" and "ask not what your country" in doc["sentences"][0]["text"]
    assert len(pysubs2.load(str(tmp_path / "jfk.en.srt"))) >= 2
    assert (tmp_path / "jfk.en.vtt").read_text().startswith("WEBVTT")


@pytest.mark.slow
def test_silence_succeeds_with_empty_transcript(tmp_path: Path) -> None:
    silent = tmp_path / "silence.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=160x120:d=3", "-f", "lavfi",
         "-i", "anullsrc=r=44100:cl=stereo", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(silent)],
        check=True,
    )  # fmt: skip
    out = tmp_path / "out"
    proc = run_cli("translate", str(silent), "--to", "ru", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "no speech detected" in proc.stderr
    report = json.loads((out / "silence.report.json").read_text())
    assert report["sentence_count"] == 0 and report["notes"]
    _streams, duration = ffprobe_streams(out / "silence.ru.mp4")
    assert abs(duration - 3.0) < 0.1


def _bad_inputs(tmp: Path, jfk_video: Path) -> dict[str, tuple[list[str], str]]:
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    truncated = tmp / "truncated.mp4"
    truncated.write_bytes(jfk_video.read_bytes()[:5000])
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    noaudio = make_video(tmp / "noaudio.mp4", None, 2.0)
    return {
        "text-renamed-mp4": ([str(text), "--to", "ru"], "not a readable media file"),
        "truncated-mp4": ([str(truncated), "--to", "ru"], "not a readable media file"),
        "zero-bytes": ([str(empty), "--to", "ru"], "empty"),
        "no-audio-stream": ([str(noaudio), "--to", "ru"], "no audio stream"),
        "unknown-language": ([str(jfk_video), "--to", "xx"], "unknown language"),
        "unknown-source-language": ([str(jfk_video), "--to", "ru", "--from", "klingon"], "unknown language"),
        "missing-file": ([str(tmp / "missing.mp4"), "--to", "ru"], "not found"),
        "bad-mode": ([str(jfk_video), "--to", "ru", "--mode", "karaoke"], "--mode"),
    }


CASES = ["text-renamed-mp4", "truncated-mp4", "zero-bytes", "no-audio-stream", "unknown-language",
         "unknown-source-language", "missing-file", "bad-mode"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_error(case: str, jfk_video: Path, tmp_path: Path) -> None:
    args, needle = _bad_inputs(tmp_path, jfk_video)[case]
    out = tmp_path / "out"
    proc = run_cli("translate", *args, "-o", str(out))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())  # no partial output


def test_input_longer_than_max_duration_is_one_line_error(jfk_video: Path, tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "VT_MAX_DURATION": "5"}  # the video lasts 13 s
    out = tmp_path / "out"
    proc = subprocess.run([*CLI, "translate", str(jfk_video), "--to", "ru", "-o", str(out)],
                          capture_output=True, text=True, timeout=120, env=env, check=False)  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0] == "error: jfk.mp4 lasts 0:00:13 (h:mm:ss); at most 0:00:05 is accepted"
    assert not out.exists() or not any(out.iterdir())


def test_stage_progress_has_one_bar_per_stage_and_target() -> None:
    """The bars follow the language the runner names, not the order in which stages start."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from videotranslator.cli import StageProgress

    with Progress(console=Console(file=io.StringIO())) as progress:
        bars = StageProgress(progress)
        for stage, lang in [("asr", None), ("translate", "ru"), ("translate", "es"), ("mux", "es"), ("mux", "ru")]:
            bars(stage, 0.0, lang)
            bars(stage, 0.5, lang)
        bars("mux", 1.0, "ru")
        done = {t.description: t.completed for t in progress.tasks}
    assert done == {"asr": 0.5, "translate ru": 0.5, "translate es": 0.5, "mux es": 0.5, "mux ru": 1.0}
