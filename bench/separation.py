"""Separation benchmark (issue 15): what ``mix.background = separate`` buys and what it costs.

- quality: real speech (tests/data: jfk.flac, this_is_a_test.mp3, ru_num.wav, ~24 s) over real music (Debian's
  colobot-common-sounds) at 0 dB and -5 dB speech-to-music. The background stem's SI-SDR against the music, minus
  the mix's (the improvement), and the voice left in it: the voice alone under the same mask, against the voice
  in the mix (dB). Whisper (bundled base) counts the words it hears in the stem.
- speed: the stage on a 60 s file (decode, separate, write), x real time.
- rss: peak RSS of a fresh process that separates N minutes (speech over music, looped) and mixes a dub over the
  stem (build_dub_track); the 10- and 60-minute peaks.
- e2e: the job of bench/e2e.py (the lecture, to Russian, the real models) in one process (models loaded once):
  background 'duck' with cold stage caches, then 'separate' over a copy of its cache (ASR, translations and clips
  warm), so the second run's extra is exactly the separation step; RTF with separation = (the cold job + that
  step) / the duration.

    .venv/bin/python bench/separation.py [--quality] [--speed] [--rss 10 60] [--e2e]   # none given: all
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs.settings import Settings
from pipelines.media import decode_audio, run_ffmpeg
from pipelines.separate import SAMPLE_RATE_HZ, SpleeterSeparator, crossfade_chunks

BENCH = ROOT / "var" / "bench"
DATA = ROOT / "tests" / "data"
MUSIC_DIR = Path("/usr/share/games/colobot/music")
MUSIC = ("Constructive.ogg", "Humanitarian.ogg")
RATE = SAMPLE_RATE_HZ


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR (dB) of ``estimate`` against ``reference`` (any shape, flattened)."""
    e, r = estimate.reshape(-1).astype(np.float64), reference.reshape(-1).astype(np.float64)
    target = (e @ r) / (r @ r) * r
    return float(10 * np.log10((target @ target) / ((e - target) @ (e - target))))


def projection_gain_db(estimate: np.ndarray, part: np.ndarray) -> float:
    """The gain (dB) of ``part`` as it stands, sample for sample, in ``estimate``: its least-squares coefficient
    (BSS Eval's interference projection with a 0-tap filter). What the mask leaves of a source but smears
    (the ``voice_left_db`` share) no longer lines up with it and is not counted here."""
    e, p = estimate.reshape(-1).astype(np.float64), part.reshape(-1).astype(np.float64)
    return float(20 * np.log10(abs(e @ p) / (p @ p) + 1e-12))


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def speech() -> np.ndarray:
    """The committed speech samples one after the other, 0.5 s apart: (2, n) at 44.1 kHz."""
    gap = np.zeros((RATE // 2, 2), np.float32)
    parts = [
        decode_audio(DATA / name, sample_rate_hz=RATE, channels=2)
        for name in ("jfk.flac", "this_is_a_test.mp3", "ru_num.wav")
    ]
    return np.concatenate([p for part in parts for p in (part, gap)]).T.copy()


def quality(sep: SpleeterSeparator, asr: Any) -> list[dict[str, Any]]:
    voice = speech()
    n = voice.shape[1]
    rows = []
    for name in MUSIC:
        music = decode_audio(MUSIC_DIR / name, sample_rate_hz=RATE, channels=2)[30 * RATE : 30 * RATE + n].T
        for snr in (0.0, -5.0):
            m = music * 10 ** ((db(voice) - db(music) - snr) / 20)
            scale = 0.9 / float(np.abs(voice + m).max())
            v, m = voice * scale, m * scale
            stacked = np.concatenate([v + m, v, m]).T  # (n, 6): the mix, then its two parts under the same masks

            def process(x: np.ndarray) -> np.ndarray:
                return np.concatenate(sep.separate_chunk(x[:2], (x[2:4], x[4:6])))

            started = time.perf_counter()
            out = np.concatenate(list(crossfade_chunks([stacked], process))).T
            seconds = time.perf_counter() - started
            background, voice_left = out[:2], out[2:4]
            with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
                import soundfile as sf

                sf.write(tmp.name, background.T, RATE, subtype="FLOAT")
                heard = " ".join(s.text for s in asr(Path(tmp.name), language="en").segments)
            rows.append(
                {
                    "music": name,
                    "speech_to_music_db": snr,
                    "si_sdr_mix_db": round(si_sdr(v + m, m), 2),
                    "si_sdr_background_db": round(si_sdr(background, m), 2),
                    "si_sdr_improvement_db": round(si_sdr(background, m) - si_sdr(v + m, m), 2),
                    "voice_left_db": round(db(voice_left) - db(v), 2),
                    "voice_projection_db": round(projection_gain_db(background, v), 2),
                    "music_level_change_db": round(db(background) - db(m), 2),
                    "whisper_words_in_background": len(re.findall(r"\w+", heard)),
                    "seconds": round(seconds, 2),
                    "audio_s": round(n / RATE, 2),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def looped(minutes: float) -> Path:
    """``minutes`` of the speech samples over the music, looped (48 kHz stereo opus, cached in var/bench/)."""
    out = BENCH / f"sep-{minutes:g}min.opus"
    if out.is_file():
        return out
    BENCH.mkdir(parents=True, exist_ok=True)
    args = ["-stream_loop", "-1", "-i", str(DATA / "jfk.flac"), "-stream_loop", "-1", "-i", str(MUSIC_DIR / MUSIC[0])]
    args += [
        "-filter_complex",
        "[0:a]apad=pad_dur=3[v];[v][1:a]amix=inputs=2:duration=shortest",
        "-t",
        str(minutes * 60),
    ]
    run_ffmpeg([*args, "-ac", "2", "-ar", "48000", "-c:a", "libopus", "-b:a", "32k", str(out)])
    return out


def speed(sep: SpleeterSeparator) -> dict[str, float]:
    src = looped(1)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        sep(src, Path(tmp) / "bg.flac")
        seconds = time.perf_counter() - started
    return {"audio_s": 60.0, "seconds": round(seconds, 2), "x_real_time": round(seconds / 60.0, 3)}


_CHILD = """
import resource, sys, time
from pathlib import Path
import numpy as np
from configs.settings import MixSettings, StorageSettings
from pipelines.mix import build_dub_track
from pipelines.schema import Clip, DubPlan, PlanItem
from pipelines.separate import SpleeterSeparator

src, seconds, tmp = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
started = time.perf_counter()
stem = SpleeterSeparator(StorageSettings().models_dir)(src, tmp / "bg.flac")
separated = time.perf_counter() - started
tone = (0.3 * np.sin(np.arange(3 * 48000) / 48000 * 2 * np.pi * 220)).astype(np.float32)
starts = np.arange(10.0, seconds - 5, 30.0)
plan = DubPlan(tuple(PlanItem(i, s, s + 3.0, 1.0, 0.0) for i, s in enumerate(starts)))
clips = [Clip(i, tone, 48000) for i in range(len(starts))]
build_dub_track(stem, plan, clips, settings=MixSettings(background="separate"), duration_s=seconds, out_wav=tmp / "dub.wav")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(f"{peak:.1f} {separated:.1f} {time.perf_counter() - started:.1f}")
"""


def rss(minutes: list[float]) -> list[dict[str, float]]:
    rows = []
    for m in minutes:
        src = looped(m)
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(src), str(m * 60), tmp],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
        peak, separated, total = (float(v) for v in proc.stdout.split()[-3:])
        rows.append({"minutes": m, "peak_rss_mb": peak, "separation_s": separated, "separation_and_mix_s": total})
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def e2e(to: str = "ru") -> dict[str, Any]:
    from bench._media import lecture_clip
    from pipelines import media
    from pipelines.runner import Pipeline
    from pipelines.schema import JobRequest

    clip = lecture_clip(BENCH / "lecture.mp4")
    duration = media.probe(clip).duration_s
    settings = Settings()
    pipe = Pipeline(settings)
    pipe.asr, pipe.translator, pipe.tts.voice_for(to), pipe.separator  # loaded once, outside the timings
    result: dict[str, Any] = {"input": str(clip), "duration_s": round(duration, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        cold, warm = Path(tmp) / "cache-duck", Path(tmp) / "cache-separate"
        for background, cache_dir in (("duck", cold), ("separate", warm)):
            if background == "separate":  # the same ASR, translations and clips: only separation and the mix differ
                shutil.copytree(cold, warm)
            settings.storage.cache_dir = cache_dir
            request = JobRequest(input=str(clip), target_languages=[to], background=background)  # type: ignore[arg-type]
            report = pipe.run(request, Path(tmp) / f"out-{background}").report
            result[background] = {
                "rtf": report["rtf"],
                "timings_s": report["timings_s"],
                "cache_hits": report["cache_hits"],
            }
            print(json.dumps({background: result[background]}), file=sys.stderr)
    duck_total, separate_s = result["duck"]["timings_s"]["total"], result["separate"]["timings_s"]["separate"]
    result["rtf_separate"] = round((duck_total + separate_s) / duration, 3)  # the cold job plus the separation step
    result["rtf_ratio_separate_over_duck"] = round((duck_total + separate_s) / duck_total, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--rss", type=float, nargs="*")
    parser.add_argument("--e2e", action="store_true")
    args = parser.parse_args()
    every = not (args.quality or args.speed or args.rss is not None or args.e2e)
    settings = Settings()
    results: dict[str, Any] = {"loadavg_start": list(np.round(_loadavg(), 2))}
    sep = SpleeterSeparator(settings.storage.models_dir)
    if every or args.quality:
        from pipelines.asr import WhisperASR

        results["quality"] = quality(sep, WhisperASR(settings.asr, settings.storage.models_dir))
    if every or args.speed:
        results["speed"] = speed(sep)
    if every or args.rss is not None:
        results["rss"] = rss(args.rss or [10, 60])
    if every or args.e2e:
        results["e2e"] = e2e()
    results["loadavg_end"] = list(np.round(_loadavg(), 2))
    results["this_process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    print(json.dumps(results, indent=2))


def _loadavg() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


if __name__ == "__main__":
    main()
