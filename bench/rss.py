"""Peak memory of a whole dub job against the input's length (issue 12, item 17).

Each length runs as its own job process; a poller sums the resident memory (PSS, so shared pages count once) of
that process and every process under it (ffmpeg) every 50 ms, and keeps the peak. The input is a 60 s clip of the committed speech
samples, looped to the length (a small h264 video, so the mux copies it). The job is the local pipeline in dub
mode to Spanish with the real extraction, segmentation, TTS (espeak-ng, cached per sentence), fit, mix and mux,
and two stand-ins that keep the run short on 2 cores: the translator returns the English line (the issue allows a
fake translator), and the ASR replays the real transcript of the 60 s clip (made once by faster-whisper, cached in
var/bench/) looped to the length, so faster-whisper's own buffers are not in the figures.

    .venv/bin/python bench/rss.py [--minutes 10 30 60]
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/rss.py   # the same bench on another version
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):  # else the checkout named there is measured
    sys.path.insert(0, str(ROOT))

from bench._media import speech_clip

BENCH = ROOT / "var" / "bench"
LOOP_S = 60.0


def looped_input(minutes: int) -> Path:
    """``minutes`` of the 60 s speech clip, looped, with a 160x90 5 fps video (cached in var/bench/)."""
    out = BENCH / f"rss-{minutes}min.mp4"
    if out.is_file():
        return out
    clip = speech_clip(BENCH / "rss-speech60.m4a", LOOP_S, video=False)
    seconds = str(minutes * 60)
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(clip)]
    args += ["-f", "lavfi", "-i", "color=c=navy:s=160x90:r=5", "-map", "1:v", "-map", "0:a", "-t", seconds]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "copy", str(out)]
    subprocess.run(args, check=True)
    return out


def source_transcript() -> dict[str, Any]:
    """The real transcript of the 60 s clip (faster-whisper, default settings), cached."""
    cached = BENCH / "rss-transcript60.json"
    if not cached.is_file():
        from configs.settings import Settings
        from pipelines.asr import WhisperASR

        settings = Settings()
        clip = speech_clip(BENCH / "rss-speech60.m4a", LOOP_S, video=False)
        transcript = WhisperASR(settings.asr, settings.storage.models_dir)(str(clip), language="en")
        cached.write_text(json.dumps(transcript.to_dict()))
    return dict(json.loads(cached.read_text()))


class ReplayASR:
    """The 60 s clip's real transcript, repeated every 60 s up to the audio's length (read from the WAV header)."""

    name = "replay"

    def __init__(self, transcript: Mapping[str, Any]) -> None:
        self.transcript = transcript

    def __call__(self, audio: Any, *, language: str | None = None) -> Any:
        import soundfile as sf

        from pipelines.schema import Segment, Transcript, Word

        info = sf.info(str(audio))
        duration = info.frames / info.samplerate
        segments = []
        for k in range(int(duration // LOOP_S) + 1):
            off = k * LOOP_S
            for seg in self.transcript["segments"]:
                if seg["end_s"] + off > duration:
                    continue
                words = tuple(Word(w["start_s"] + off, w["end_s"] + off, w["text"], w["probability"]) for w in seg["words"])
                segments.append(Segment(seg["start_s"] + off, seg["end_s"] + off, seg["text"], words))
        return Transcript("en", 1.0, round(duration, 3), tuple(segments))


class EchoTranslator:
    """A fast stand-in for the LLM: every line 'translated' to itself; nothing is ever shortened."""

    name = "echo"

    def translate(self, sentences: Sequence[Any], *, source_language: str, target_language: str, glossary: Any = None) -> list[Any]:
        from pipelines.schema import Translation

        return [Translation(s.id, s.text, s.text) for s in sentences]

    def shorten(self, text: str, *, target_language: str, max_chars: int) -> str | None:
        return None


def child(input_path: str, out_dir: str) -> None:
    """One dub job (run in its own process by :func:`measure`); prints its report's figures as JSON."""
    from configs.settings import Settings
    from pipelines.runner import Pipeline
    from pipelines.schema import JobRequest

    settings = Settings()
    settings.storage.cache_dir = Path(out_dir) / "cache"  # cold: every stage runs
    pipe = Pipeline(settings, asr=ReplayASR(source_transcript()), translator=EchoTranslator())
    result = pipe.run(JobRequest(input=input_path, target_languages=["es"], mode="dub"), Path(out_dir) / "out")
    with open("/proc/self/status", encoding="ascii") as fh:  # VmHWM: this process's peak (ru_maxrss would
        peak_mb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024  # count the parent's)
    print(json.dumps({"job_process_peak_mb": round(peak_mb, 1), "stages_s": result.report["timings_s"],
                      "sentences": result.report["sentence_count"]}))  # fmt: skip


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def tree_rss_kb(root: int) -> dict[str, int]:
    """The resident memory in kB of ``root`` and each of its descendants, by ``pid:name`` (read from /proc). PSS,
    so pages shared between processes count once in the sum; a descendant still running the job's own executable
    is a fork (or vfork, which shares the very same memory) about to exec ffmpeg or espeak-ng, and is left out, or
    the job's memory would count twice (the job starts no other Python process)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    parent[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, p in parent.items() if p == pid and c not in tree]
        tree.update(kids)
        frontier += kids
    rss: dict[str, int] = {}
    job_exe = _exe(root)
    for pid in tree:
        if pid != root and _exe(pid) == job_exe:  # forked to start a tool, not exec'd yet: the job's own pages
            continue
        try:
            with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as fh:
                name = fh.read().strip()
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
            rss[f"{pid}:{name}"] = int(fields.get("Pss", "0 kB").split()[0])
        except (OSError, KeyError, ValueError):
            continue
    return rss


def measure(minutes: int) -> dict[str, Any]:
    """Run one job on ``minutes`` of input and poll its process tree's memory; the peak and the job's figures."""
    path = looped_input(minutes)
    source_transcript()  # made before the timed job, outside it
    with tempfile.TemporaryDirectory(prefix="vt-rss-", dir=BENCH) as tmp:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(path), tmp], stdout=subprocess.PIPE, text=True)
        peak_kb, at_peak, started = 0, dict[str, int](), time.perf_counter()
        while proc.poll() is None:
            rss = tree_rss_kb(proc.pid)
            if sum(rss.values()) > peak_kb:
                peak_kb, at_peak = sum(rss.values()), rss
            time.sleep(0.05)
        wall = time.perf_counter() - started
        out = proc.stdout.read() if proc.stdout else ""
        if proc.returncode != 0:
            raise SystemExit(f"the {minutes} min job failed (exit {proc.returncode})")
    figures = json.loads(out.strip().splitlines()[-1])
    return {"minutes": minutes, "peak_pss_all_processes_mb": round(peak_kb / 1024, 1), "wall_s": round(wall, 1),
            "at_peak_mb": [f"{k.split(':', 1)[1]} {v / 1024:.1f}" for k, v in sorted(at_peak.items())], **figures}  # fmt: skip


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, nargs="+", default=[10, 30, 60])
    args = parser.parse_args()
    BENCH.mkdir(parents=True, exist_ok=True)
    import pipelines

    rows = [measure(m) for m in args.minutes]
    print(json.dumps({"code": str(Path(pipelines.__file__).parent.parent), "runs": rows}, indent=2))
    if len(rows) > 1:
        print(f"peak growth {rows[0]['minutes']} -> {rows[-1]['minutes']} min: "
              f"{rows[-1]['peak_pss_all_processes_mb'] - rows[0]['peak_pss_all_processes_mb']:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
