"""Benchmark inputs built from the committed real-speech samples."""

from __future__ import annotations

import subprocess
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def speech_clip(out: Path, duration_s: float = 60.0, *, video: bool = True) -> Path:
    """A clip of real English speech: jfk.flac and this_is_a_test.mp3 alternating, 0.8 s apart."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    pieces = [DATA / "jfk.flac", DATA / "this_is_a_test.mp3"]
    inputs: list[str] = []
    n = int(duration_s // 8) + 2
    for i in range(n):
        inputs += ["-i", str(pieces[i % 2])]
    chain = "".join(f"[{i}:a]aresample=16000,aformat=sample_fmts=fltp:channel_layouts=mono,apad=pad_dur=0.8[a{i}];" for i in range(n))
    chain += "".join(f"[a{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1,atrim=0:{duration_s}[a]"
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs]
    if video:
        args += ["-f", "lavfi", "-i", f"color=c=navy:s=640x360:r=25:d={duration_s}"]
        args += ["-filter_complex", chain, "-map", f"{n}:v", "-map", "[a]", "-c:v", "libx264", "-preset", "veryfast"]
        args += ["-pix_fmt", "yuv420p"]
    else:
        args += ["-filter_complex", chain, "-map", "[a]"]
    args += ["-c:a", "aac", "-t", str(duration_s), str(out)]
    subprocess.run(args, check=True)
    return out
