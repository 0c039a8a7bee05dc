"""End-to-end benchmark: per-stage wall times, RTF and the translation's share of the time on the default CPU
models, and the overhead of our ASR stage against a bare faster-whisper transcribe in the same run.

    .venv/bin/python bench/e2e.py [--input lecture|long|repeat] [--duration 60] [--to ru] [--repeats 3]
    .venv/bin/python bench/e2e.py --checkout before=/work/main --checkout after=. [--rounds 2] [--input long]

``lecture`` (the default): a short lecture with varied sentences and no repetition (bench/_media.LECTURE),
spoken by the bundled Piper voice and cached under var/bench/. ``long``: about ten minutes, the lecture and the
English lines of bench/mt_set, no sentence repeated (bench/_media.long_paragraphs). ``repeat``: the older 60 s
clip of two short real recordings repeated (3 distinct sentences; it understates the translation time of real
speech).

``--checkout NAME=DIR`` (repeatable): each checkout runs the job in its own process (that checkout's ``pipelines``
on ``sys.path``, cold stage cache, models loaded outside the timed job), on the same input; the checkouts take
turns ``--rounds`` times, so a noisy neighbour hits them alike. Printed per round: stage times, and each
checkout's translate and total time as a ratio to the first checkout's in the same round, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._media import lecture_clip, long_paragraphs, speech_clip
from configs.settings import Settings
from pipelines import media
from pipelines.runner import Pipeline
from pipelines.schema import JobRequest


def asr_overhead(pipe: Pipeline, wav: Path, repeats: int) -> dict[str, float]:
    """Our WhisperASR call vs the bare faster-whisper call it wraps (BatchedInferencePipeline.transcribe,
    or WhisperModel.transcribe with batch_size 0): same model, audio and arguments, interleaved."""
    asr = pipe.asr
    kwargs = asr.transcribe_kwargs("en")
    ours, bare = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        segments, _info = asr.engine.transcribe(str(wav), **kwargs)
        list(segments)
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        asr(wav, language="en")
        ours.append(time.perf_counter() - t)
    return {
        "bare_median_s": round(statistics.median(bare), 3),
        "ours_median_s": round(statistics.median(ours), 3),
        "ratio": round(statistics.median(ours) / statistics.median(bare), 3),
    }


_CHILD = textwrap.dedent(
    """
    import json, sys, tempfile, time
    from pathlib import Path
    from configs.settings import Settings
    from pipelines.runner import Pipeline
    from pipelines.schema import JobRequest

    clip, to = sys.argv[1], sys.argv[2]
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        settings.storage.cache_dir = Path(tmp) / "cache-cold"
        pipe = Pipeline(settings)
        t = time.perf_counter()
        pipe.asr, pipe.translator, pipe.tts.voice_for(to)
        load_s = time.perf_counter() - t
        report = pipe.run(JobRequest(input=clip, target_languages=[to]), Path(tmp) / "out").report
    stats = getattr(getattr(pipe.translator, "backend", None), "stats", None)
    print(json.dumps({"model_load_s": round(load_s, 2), "stages_s": report["timings_s"],
                      "sentences": report["sentence_count"], "llm": getattr(stats, "__dict__", None),
                      "translations": [r["translation"] for r in report["targets"][to]["sentences"]]},
                     ensure_ascii=False))
    """
)


def compare_checkouts(clip: Path, to: str, checkouts: list[str], rounds: int) -> dict[str, object]:
    """Each checkout's job on ``clip``, in turns, ``rounds`` times; ratios against the first checkout."""
    named = [(spec.partition("=")[0], Path(spec.partition("=")[2]).resolve()) for spec in checkouts]
    out: dict[str, object] = {"input": str(clip), "target": to, "rounds": []}
    for r in range(rounds):
        row: dict[str, dict[str, object]] = {}
        for name, checkout in named:
            load = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, "-c", _CHILD, str(clip.resolve()), to], capture_output=True,
                                  text=True, cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)},
                                  check=False, timeout=7200)
            if proc.returncode != 0:
                raise SystemExit(f"{name}: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["load_before"], res["load_after"] = round(load, 1), round(os.getloadavg()[0], 1)
            row[name] = res
            st = res["stages_s"]
            print(f"round {r + 1} {name:>8}: translate {st['translate']:7.1f} s  total {st['total']:7.1f} s  "
                  f"load {res['load_before']}-{res['load_after']}", flush=True)
        first = row[named[0][0]]["stages_s"]
        for name, _ in named:
            st = row[name]["stages_s"]
            row[name]["translate_speedup"] = round(first["translate"] / st["translate"], 3)  # type: ignore[index]
            row[name]["total_speedup"] = round(first["total"] / st["total"], 3)  # type: ignore[index]
            print(f"round {r + 1} {name:>8}: translate {row[name]['translate_speedup']}x, "
                  f"total {row[name]['total_speedup']}x against {named[0][0]}", flush=True)
        out["rounds"].append(row)  # type: ignore[attr-defined]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", choices=("lecture", "long", "repeat"), default="lecture")
    parser.add_argument("--duration", type=float, default=60.0, help="length of the 'repeat' clip")
    parser.add_argument("--to", default="ru")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR",
                        help="compare checkouts, each in its own process (repeatable; the first is the baseline)")
    parser.add_argument("--rounds", type=int, default=1, help="turns of the --checkout comparison")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    if args.input == "lecture":
        clip = lecture_clip(Path("var/bench") / "lecture.mp4")
        args.duration = media.probe(clip).duration_s
    elif args.input == "long":
        clip = lecture_clip(Path("var/bench") / "lecture_long.mp4", paragraphs=long_paragraphs())
        args.duration = media.probe(clip).duration_s
    else:
        clip = speech_clip(Path("var/bench") / f"speech{int(args.duration)}.mp4", args.duration)
    if args.checkout:
        print(f"input {clip} ({args.duration:.1f} s); load average {os.getloadavg()[0]:.1f}", flush=True)
        compared = compare_checkouts(clip, args.to, args.checkout, args.rounds)
        compared["duration_s"] = round(args.duration, 2)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(compared, ensure_ascii=False, indent=1))
        return
    settings = Settings()
    results: dict[str, object] = {"input": str(clip), "duration_s": round(args.duration, 2), "target": args.to}
    with tempfile.TemporaryDirectory() as tmp:
        settings.storage.cache_dir = Path(tmp) / "cache-cold"  # no cached stage may help
        pipe = Pipeline(settings)
        t = time.perf_counter()
        pipe.asr, pipe.translator, pipe.tts.voice_for(args.to)
        results["model_load_s"] = round(time.perf_counter() - t, 2)
        request = JobRequest(input=str(clip), target_languages=[args.to])
        report = pipe.run(request, Path(tmp) / "out").report
        results["stages_s"] = report["timings_s"]
        results["rtf_warm"] = report["rtf"]
        results["rtf_with_model_load"] = round((report["timings_s"]["total"] + results["model_load_s"]) / args.duration, 3)
        results["sentences"] = report["sentence_count"]
        results["translation_share"] = round(report["timings_s"]["translate"] / report["timings_s"]["total"], 3)
        results["translations"] = [r["translation"] for r in report["targets"][args.to]["sentences"]]
        results["fit"] = report["targets"][args.to]["fit"]
        wav = media.extract_audio(media.probe(clip), Path(tmp) / "a.wav")
        results["asr_overhead"] = asr_overhead(pipe, wav, args.repeats)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
