"""End-to-end benchmark: per-stage wall times, RTF and the translation's share of the time on the default CPU
models, and the overhead of our ASR stage against a bare faster-whisper transcribe in the same run.

    .venv/bin/python bench/e2e.py [--input lecture|repeat] [--duration 60] [--to ru] [--repeats 3]
                                  [--overlap on|off|both] [--rounds 2]

``--overlap both``: the job with the stages overlapped (settings pipeline.overlap) against strictly in turn,
interleaved (off, on, off, on, ...: ``--rounds`` of each), each from a cold stage cache with the models loaded
once; it prints each mode's wall times and busy time per stage, and checks that both give the same sentences,
translations and plan. ``on``/``off``: the one job as before, in that mode (default: the settings').

``lecture`` (the default): a short lecture with varied sentences and no repetition (bench/_media.LECTURE),
spoken by the bundled Piper voice and cached under var/bench/. ``repeat``: the older 60 s clip of two short
real recordings repeated (3 distinct sentences; it understates the translation time of real speech).

What a voice costs (issue 14): ``--to ru es de --espeak-baseline [--voice ru=rhvoice:irina ...]``. Per target,
one cold run with the job's voice (``--voice``, else settings/catalog default) gives the full RTF; then
``--repeats`` rounds alternate that voice and espeak-ng (order swapped each round) over the same transcript and
translation (their stage cache hits) with the TTS clip cache emptied, so the TTS stage (synthesis, fit, any
shortening) and mux run in full each time. The full RTF per voice is the cold run's shared stages (extract,
ASR, segment, translate) plus that voice's median dub stages (TTS + mux), over the clip's duration.

    .venv/bin/python bench/e2e.py [--input lecture|long|repeat] [--duration 60] [--to ru] [--repeats 3]
    .venv/bin/python bench/e2e.py --checkout before=/work/main --checkout after=. [--rounds 2] [--input long]

``lecture`` (the default): a short lecture with varied sentences and no repetition (bench/_media.LECTURE),
spoken by the bundled Piper voice and cached under var/bench/. ``long``: about ten minutes, the lecture and the
English lines of bench/mt_set, no sentence repeated (bench/_media.long_paragraphs). ``repeat``: the older 60 s
clip of two short real recordings repeated (3 distinct sentences; it understates the translation time of real
speech).

``--speakers-separation``: issue 15's cost, the job with diarization and separation on (diarize.enabled,
mix.background=separate) against off (background=duck), ``--rounds`` runs of each, interleaved, cold caches.

``--checkout NAME=DIR`` (repeatable): each checkout runs the job in its own process (that checkout's ``pipelines``
on ``sys.path``, cold stage cache, models loaded outside the timed job), on the same input; the checkouts take
turns ``--rounds`` times, so a noisy neighbour hits them alike. Printed per round: stage times, and each
checkout's translate and total time as a ratio to the first checkout's in the same round, with the load average.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

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


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What must not differ between the modes: the report less its timings and dates."""
    return {k: v for k, v in report.items() if k not in {"created_at", "timings_s", "rtf"}}


def overlap_ab(pipe: Pipeline, request: JobRequest, tmp: Path, rounds: int) -> dict[str, Any]:
    """The job with pipeline.overlap off and on, interleaved, each from a cold stage cache."""
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for n in range(rounds):
        for mode in ("off", "on"):
            settings = pipe.settings.model_copy(deep=True)
            settings.pipeline.overlap = mode == "on"
            settings.storage.cache_dir = tmp / f"cache-{mode}-{n}"  # cold: the TTS clip cache too
            # A fresh LLM each run (loaded before the clock starts): llama.cpp reuses the previous prompt's KV
            # prefix, so every run starts from the same state and the outputs can be compared.
            run = Pipeline(settings, asr=pipe.asr)
            run.translator, run.tts.voice_for(request.target_languages[0])
            t, cpu = time.perf_counter(), time.process_time()
            report = run.run(request, tmp / f"out-{mode}-{n}").report
            wall, cpu = round(time.perf_counter() - t, 2), round(time.process_time() - cpu, 2)
            del run
            gc.collect()  # one LLM in memory at a time
            runs[mode].append({"wall_s": wall, "cpu_s": cpu, "report": report})
            # CPU seconds of this process, every thread (ffmpeg runs outside it): on a loaded machine, more
            # threads get a bigger share of the cores, so compare the CPU too, not only the wall time
            print(f"overlap {mode}: {wall} s wall, {cpu} s CPU {report['timings_s']}", file=sys.stderr)
    first = comparable(runs["off"][0]["report"])
    result: dict[str, Any] = {
        "identical": all(comparable(r["report"]) == first for mode in runs for r in runs[mode]),
    }
    for mode, items in runs.items():
        walls = [r["wall_s"] for r in items]
        result[mode] = {
            "wall_s": walls,
            "wall_median_s": round(statistics.median(walls), 2),
            "cpu_s": [r["cpu_s"] for r in items],
            "stages_busy_s": [r["report"]["timings_s"] for r in items],
        }
    result["speedup"] = round(result["off"]["wall_median_s"] / result["on"]["wall_median_s"], 3)
    return result


def speakers_ab(pipe: Pipeline, request: JobRequest, tmp: Path, rounds: int, duration_s: float) -> dict[str, Any]:
    """Issue 15's cost: diarization and separation on (diarize.enabled, mix.background=separate) against off
    (no diarization, background=duck, the behaviour before), interleaved (order swapped each round), each run
    from a cold stage cache with the models loaded before the clock starts."""
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for n in range(rounds):
        for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
            settings = pipe.settings.model_copy(deep=True)
            settings.diarize.enabled = mode == "on"
            settings.mix.background = "separate" if mode == "on" else "duck"
            settings.storage.cache_dir = tmp / f"cache-sp-{mode}-{n}"
            run = Pipeline(settings, asr=pipe.asr)
            run.translator, run.tts.voice_for(request.target_languages[0])
            load = os.getloadavg()[0]
            t = time.perf_counter()
            report = run.run(request, tmp / f"out-sp-{mode}-{n}").report
            wall = round(time.perf_counter() - t, 2)
            del run
            gc.collect()
            runs[mode].append({"wall_s": wall, "rtf": round(wall / duration_s, 3), "load": round(load, 2),
                               "stages_s": report["timings_s"], "speakers": (report.get("speakers") or {}).get("count"),
                               "background": report.get("background")})  # fmt: skip
            print(f"speakers+separation {mode}: {wall} s wall (load {load:.1f}) {report['timings_s']}", file=sys.stderr)
    result: dict[str, Any] = {"runs": runs}
    for mode, items in runs.items():
        walls = [r["wall_s"] for r in items]
        result[mode] = {"wall_median_s": round(statistics.median(walls), 2),
                        "rtf_median": round(statistics.median(walls) / duration_s, 3)}  # fmt: skip
    result["cost_rtf"] = round(result["on"]["rtf_median"] - result["off"]["rtf_median"], 3)
    result["ratio"] = round(result["on"]["wall_median_s"] / result["off"]["wall_median_s"], 3)
    return result


DUB_STAGES = ("tts", "mux")  # what the voice changes; the rest is shared by both voices of a target


def voice_cost(pipe: Pipeline, clip: Path, duration_s: float, lang: str, voice: str, repeats: int) -> dict[str, object]:
    """One cold run of ``lang`` with ``voice`` (full RTF), then ``repeats`` rounds of ``voice`` and its espeak-ng
    baseline alternating over the cached transcript and translation, each with an empty TTS clip cache."""
    from pipelines.tts import espeak_voice_for

    voices = pipe.settings.tts.voices  # the stage reads this dict on every call
    baseline = f"espeak:{espeak_voice_for(lang)}"
    voices[lang] = voice
    request = JobRequest(input=str(clip), target_languages=[lang])
    out = pipe.settings.storage.cache_dir.parent / "out"
    cold = pipe.run(request, out / f"{lang}-cold").report
    shared_s = sum(v for k, v in cold["timings_s"].items() if k not in (*DUB_STAGES, "total"))
    dub_s: dict[str, list[float]] = {voice: [], baseline: []}
    runs = []
    for r in range(repeats):
        for v in (voice, baseline) if r % 2 else (baseline, voice):
            voices[lang] = v
            shutil.rmtree(pipe.settings.storage.cache_dir / "tts", ignore_errors=True)
            report = pipe.run(request, out / f"{lang}-{r}-{v.replace(':', '_')}").report
            seconds = sum(report["timings_s"].get(k, 0.0) for k in DUB_STAGES)
            dub_s[v].append(seconds)
            target = report["targets"][lang]
            speeds = [x["speed"] for x in target["sentences"] if x["speed"] is not None]
            runs.append({
                "voice": v, "dub_s": round(seconds, 2), "stages_s": report["timings_s"], "rtf_warm": report["rtf"],
                "max_speed": max(speeds, default=None), "overflow": (target["fit"] or {}).get("overflow_count"),
                "shortened": sum("shortened" in x["flags"] for x in target["sentences"]),
                "fallback": target.get("voice_fallback"),
            })  # fmt: skip
    voices[lang] = voice
    med = {v: statistics.median(s) for v, s in dub_s.items()}
    return {
        "voice": voice,
        "baseline": baseline,
        "cold": {"stages_s": cold["timings_s"], "rtf": cold["rtf"]},
        "shared_s": round(shared_s, 2),
        "dub_s_median": {v: round(s, 2) for v, s in med.items()},
        "rtf": {v: round((shared_s + s) / duration_s, 3) for v, s in med.items()},
        "dub_rtf": {v: round(s / duration_s, 3) for v, s in med.items()},
        "cost_s": round(med[voice] - med[baseline], 2),
        "cost_rtf": round((med[voice] - med[baseline]) / duration_s, 3),
        "runs": runs,
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
    parser.add_argument("--to", nargs="+", default=["ru"], help="target language(s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overlap", choices=("on", "off", "both"), default=None)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode with --overlap both; turns of the --checkout comparison")
    parser.add_argument(
        "--voice", action="append", default=[], metavar="LANG=ENGINE:VOICE", help="the voice of a target"
    )
    parser.add_argument(
        "--espeak-baseline", action="store_true", help="per target: the voice against espeak-ng, interleaved"
    )
    parser.add_argument("--speakers-separation", action="store_true",
                        help="issue 15's cost: diarization + separation on against off, interleaved (--rounds each)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR",
                        help="compare checkouts, each in its own process (repeatable; the first is the baseline)")
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
        compared = compare_checkouts(clip, args.to[0], args.checkout, args.rounds)
        compared["duration_s"] = round(args.duration, 2)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(compared, ensure_ascii=False, indent=1))
        return
    settings = Settings()
    for pair in args.voice:
        lang, sep, voice = pair.partition("=")
        if not sep or not voice:
            parser.error(f"--voice {pair!r}: expected LANG=ENGINE:VOICE")
        settings.tts.voices[lang.strip().lower()] = voice.strip()
    results: dict[str, object] = {"input": str(clip), "duration_s": round(args.duration, 2), "target": args.to[0]}
    with tempfile.TemporaryDirectory() as tmp:
        settings.storage.cache_dir = Path(tmp) / "cache-cold"  # no cached stage may help
        pipe = Pipeline(settings)
        t = time.perf_counter()
        pipe.asr, [pipe.tts.voice_for(lang) for lang in args.to]
        if args.overlap != "both":  # --overlap both loads a translator per run
            _ = pipe.translator
        results["model_load_s"] = round(time.perf_counter() - t, 2)
        if args.overlap == "both":
            request = JobRequest(input=str(clip), target_languages=args.to)
            results["overlap"] = overlap_ab(pipe, request, Path(tmp), args.rounds)
            _write(results, args.json)
            return
        if args.speakers_separation:
            request = JobRequest(input=str(clip), target_languages=args.to)
            results["speakers_separation"] = speakers_ab(pipe, request, Path(tmp), args.rounds, args.duration)
            _write(results, args.json)
            return
        if args.overlap is not None:
            settings.pipeline.overlap = args.overlap == "on"
        results["pipeline_overlap"] = settings.pipeline.overlap
        if args.espeak_baseline:
            results["target"] = args.to
            results["targets"] = {
                lang: voice_cost(pipe, clip, args.duration, lang, pipe.tts.voice_for(lang), args.repeats)
                for lang in args.to
            }
            _write(results, args.json)
            return
        request = JobRequest(input=str(clip), target_languages=args.to)
        report = pipe.run(request, Path(tmp) / "out").report
        results["stages_s"] = report["timings_s"]
        results["rtf_warm"] = report["rtf"]
        results["rtf_with_model_load"] = round(
            (report["timings_s"]["total"] + results["model_load_s"]) / args.duration, 3
        )
        results["sentences"] = report["sentence_count"]
        results["translation_share"] = round(report["timings_s"]["translate"] / report["timings_s"]["total"], 3)
        results["translations"] = [r["translation"] for r in report["targets"][args.to[0]]["sentences"]]
        results["fit"] = report["targets"][args.to[0]]["fit"]
        results["voices"] = report["models"]["tts"]
        wav = media.extract_audio(media.probe(clip), Path(tmp) / "a.wav")
        results["asr_overhead"] = asr_overhead(pipe, wav, args.repeats)
    _write(results, args.json)


def _write(results: dict[str, object], path: Path | None) -> None:
    text = json.dumps(results, indent=2, ensure_ascii=False)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


if __name__ == "__main__":
    main()
