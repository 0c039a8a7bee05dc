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


# A short lecture written for the benchmark (varied sentences, names, numbers, a question, an idiom; no
# repetition), spoken by the bundled Piper voice. Paragraphs are separated by a longer pause.
LECTURE = (
    ("Good afternoon, and thank you all for coming back after the break. Today we are going to talk about "
    "bridges, which sounds boring until you try to build one."),
    ("In 1879, the Tay Bridge in Scotland collapsed in a winter storm, and a train full of passengers fell into "
    "the river. The engineer, Thomas Bouch, had not properly accounted for the force of the wind."),
    ("Nobody in this room is going to make that mistake, I hope, but it tells us something important. The "
    "numbers on paper are only as good as the assumptions behind them."),
    ("So when you look at a design, ask yourself what the author did not think about. Does the load change with "
    "the seasons? What happens when the river floods?"),
    ("Well, you might say that this is what safety factors are for. And you would be partly right, but a safety "
    "factor is no substitute for thinking."),
    "For next week, please read the chapter on suspension bridges and bring one question about the Tay Bridge.",
)


def long_paragraphs() -> list[str]:
    """About ten minutes of English with no sentence repeated: LECTURE, then the English lines of the reference
    set (bench/mt_set: its English sources and the English references of the Russian and Spanish passages),
    one paragraph per passage."""
    paragraphs = list(LECTURE)
    folder = Path(__file__).resolve().parent / "mt_set"
    for path in (folder / "en" / "en.txt", folder / "ru" / "en.txt", folder / "es" / "en.txt"):
        passage: list[str] = []
        for line in [*path.read_text(encoding="utf-8").splitlines(), "#"]:
            if line.startswith("#"):
                if passage:
                    paragraphs.append(" ".join(passage))
                passage = []
            elif line.strip():
                passage.append(line.strip())
    return paragraphs


def lecture_clip(out: Path, *, video: bool = True, paragraphs: tuple[str, ...] | list[str] = LECTURE) -> Path:
    """``paragraphs`` (LECTURE: about 60 s) spoken by the bundled Piper en voice, cached at ``out``."""
    if out.is_file():
        return out
    import numpy as np
    import soundfile as sf

    from configs.settings import Settings
    from pipelines.tts import TTSStage

    settings = Settings()
    stage = TTSStage(settings.tts, settings.storage.models_dir)
    synth = stage.synthesizer(stage.voice_for("en"))
    rate = synth.sample_rate_hz
    pieces = []
    for paragraph in paragraphs:
        pieces += [synth.synthesize(paragraph), np.zeros(int(0.9 * rate), dtype=np.float32)]
    out.parent.mkdir(parents=True, exist_ok=True)
    wav = out.with_suffix(".wav")
    sf.write(wav, np.concatenate([np.zeros(int(0.5 * rate), dtype=np.float32), *pieces]), rate)
    duration = sf.info(wav).duration
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav)]
    if video:
        args += ["-f", "lavfi", "-i", f"color=c=navy:s=640x360:r=25:d={duration}", "-map", "1:v", "-map", "0:a",
                 "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac", "-t", f"{duration}", str(out)]
    subprocess.run(args, check=True)
    return out
