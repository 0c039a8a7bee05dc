"""Diarization benchmark (issue 15): two- and three-speaker conversations of at least 60 s with known turns,
spliced from real recordings (JFK: tests/data/jfk.flac; a Russian speaker: tests/data/ru_num.wav) and TTS
voices as extra speakers (piper en_US-joe, RHVoice anna). Reports the share of speech time given to the right
speaker (best one-to-one mapping of found to true speakers), whether the count was right, and the speed
(wall and CPU seconds of the diarizer over the audio's length; the embedder loads before timing).

    .venv/bin/python bench/diarize.py [--json out.json]

Speech is given to the diarizer the way the ASR gives it: word-like spans (0.4 s every 0.5 s) over each turn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(ROOT))

import numpy as np
import soundfile as sf

RATE = 16000
EN = [
    "We choose to go to the moon in this decade, not because it is easy, but because it is hard.",
    "The weather will change over the weekend, so bring a coat if you go out on Sunday.",
    "I read the report last night and I think the numbers in the second table are wrong.",
    "Our train was late again this morning, and the whole office waited for the meeting to start.",
    "Let us meet at the library after lunch and go over the plan one more time.",
    "She told me the new bridge across the river will open at the end of next month.",
]
RU = [
    "Сегодня утром я долго ждала автобус, потому что шёл сильный дождь.",
    "Мы решили поехать на дачу в субботу и вернуться только в понедельник.",
    "В библиотеке открыли новый зал, где можно спокойно работать весь день.",
    "Позвони мне вечером, и мы обсудим, что купить к празднику.",
    "Этот фильм мне понравился больше, чем книга, хотя обычно бывает наоборот.",
    "Летом мы часто гуляем в парке у реки и кормим уток.",
]


def _mono16k(path: Path) -> np.ndarray:
    import librosa

    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return np.asarray(librosa.resample(audio.mean(axis=1), orig_sr=rate, target_sr=RATE), dtype=np.float32)


def _voice(spec: str, texts: list[str]) -> list[np.ndarray]:
    import librosa

    from configs.settings import Settings
    from pipelines.tts import TTSStage, trim_silence

    settings = Settings(_env_file=None)
    synth = TTSStage(settings.tts, settings.storage.models_dir).synthesizer(spec)
    out = []
    for text in texts:
        audio = trim_silence(synth.synthesize(text), synth.sample_rate_hz)
        out.append(np.asarray(librosa.resample(audio, orig_sr=synth.sample_rate_hz, target_sr=RATE), dtype=np.float32))
    return out


def _real_turns(audio: np.ndarray) -> list[np.ndarray]:
    """A recording cut at its longest pauses into 2-3 phrases (so turns are not all the same clip)."""
    frame = RATE // 50
    rms = np.sqrt(np.mean(audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    quiet = np.flatnonzero(rms < 0.1 * np.median(rms))
    cuts = [c * frame for c in quiet if 2 * RATE < c * frame < len(audio) - 2 * RATE]
    cut = cuts[len(cuts) // 2] if cuts else len(audio) // 2
    return [audio, audio[:cut], audio[cut:]]


def conversation(
    sources: dict[str, list[np.ndarray]], min_s: float = 62.0
) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Turns in rotation over the speakers (each speaker's clips in turn) until ``min_s`` seconds."""
    rng = np.random.default_rng(15)
    names = list(sources)
    parts: list[np.ndarray] = []
    turns: list[tuple[float, float, str]] = []
    t, i = 0.0, 0
    while t < min_s:
        who = names[i % len(names)]
        clip = sources[who][(i // len(names)) % len(sources[who])]
        pause = np.zeros(int(rng.uniform(0.3, 0.9) * RATE), dtype=np.float32)
        clip = clip / (np.max(np.abs(clip)) + 1e-9) * 0.8
        parts += [clip, pause]
        turns.append((t, t + len(clip) / RATE, who))
        t += (len(clip) + len(pause)) / RATE
        i += 1
    return np.concatenate(parts), turns


def evaluate(
    name: str, audio: np.ndarray, turns: list[tuple[float, float, str]], tmp: Path, overrides: dict[str, str] | None = None
) -> dict[str, object]:
    from scipy.optimize import linear_sum_assignment

    from configs.settings import DiarizeSettings
    from pipelines.diarize import Diarizer
    from pipelines.schema import Segment, Transcript, Word

    wav = tmp / f"{name}.wav"
    sf.write(wav, audio, RATE, subtype="PCM_16")
    segments = []
    truth: list[tuple[float, str]] = []
    for a, b, who in turns:
        words = tuple(Word(s, min(s + 0.4, b), " w") for s in np.arange(a, b - 0.1, 0.5))
        segments.append(Segment(a, b, " ".join("w" for _ in words), words))
        truth += [(w.end_s - w.start_s, who) for w in words]
    transcript = Transcript("en", 1.0, len(audio) / RATE, tuple(segments))
    settings = DiarizeSettings(**(overrides or {}))
    diarizer = Diarizer(settings)
    _ = diarizer.embedder  # load before timing
    wall, cpu = time.perf_counter(), time.process_time()
    result = diarizer(wav, transcript, settings=settings)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    found = sorted(set(result.labels))
    true = sorted({who for _, who in truth})
    overlap = np.zeros((len(found), len(true)))
    for (dur, who), label in zip(truth, result.labels, strict=True):
        overlap[found.index(label), true.index(who)] += dur
    rows, cols = linear_sum_assignment(-overlap)
    right = float(overlap[rows, cols].sum() / overlap.sum())
    duration = len(audio) / RATE
    return {
        "conversation": name,
        "duration_s": round(duration, 1),
        "turns": len(turns),
        "true_speakers": len(true),
        "found_speakers": len(found),
        "count_right": len(found) == len(true),
        "method": result.method,
        "right_share": round(right, 4),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rtf_wall": round(wall / duration, 4),
        "rtf_cpu": round(cpu / duration, 4),
    }


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a diarize setting (hop_s=1.5)")
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    data = ROOT / "tests" / "data"
    jfk = _real_turns(_mono16k(data / "jfk.flac"))
    ru = _real_turns(_mono16k(data / "ru_num.wav"))
    joe = _voice("piper:bundled:en_US-joe-medium", EN)
    anna = _voice("rhvoice:anna", RU)
    cases = {
        "2spk_jfk_anna": {"jfk": jfk, "anna": anna},
        "2spk_jfk_joe": {"jfk": jfk, "joe": joe},
        "3spk_jfk_ru_joe": {"jfk": jfk, "ru": ru, "joe": joe},
        "3spk_jfk_joe_anna": {"jfk": jfk, "joe": joe, "anna": anna},
        "1spk_jfk": {"jfk": jfk},
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sources in cases.items():
            audio, turns = conversation(sources)
            row = evaluate(name, audio, turns, Path(tmp), overrides)
            results.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
