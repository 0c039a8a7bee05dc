"""Intelligibility, speed and memory of every installed voice, per target language (issue 14).

For each language (bench/tts_set/<lang>.txt: 24 everyday sentences written for this project, with numbers,
dates, names and questions), every installed catalog voice of that language (pipelines/voices.py) and espeak-ng
speak every sentence through the project's own ``TTSStage`` (its voice check, text handling and engine code:
what a job gets). The bundled Whisper, loaded once and forced to the language, re-transcribes each clip, and
the character error rate (CER) against the sentence is reported per voice.

CER: total edits / total reference characters over the set (and per sentence: median, worst), after
``normalise``: NFKC, lowercase (ru: ё→е), digit runs spelt out with num2words in the language on **both**
sides (so "7" and "семь" compare equal whichever way Whisper writes them), punctuation and symbols dropped,
spaces collapsed (ja/zh: removed). A sentence counts against the reference form closest to the transcript:
as written, or as the project's TTS text normaliser rewrites it when one exists for the language (Whisper may
write an inflected number in words, e.g. "двадцать четвёртом").

Each voice synthesises in a child process of its own: speed is seconds of (edge-trimmed) audio per second of
wall time of the stage call, the voice's load time apart; memory is the child's peak RSS (``ru_maxrss``; an
engine that runs as a subprocess, espeak-ng, is counted from RUSAGE_CHILDREN) and what loading and using the
voice added to the process.

    .venv/bin/python bench/tts_cer.py [--lang ru es ...] [--voices rhvoice:irina espeak:de ru=espeak:ru ...]
        [--sentences N] [--out var/bench/tts_cer.json]

The JSON goes to --out and a markdown table beside it (same name, .md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SET_DIR = Path(__file__).resolve().parent / "tts_set"
# num2words' name for a language where it differs from the ISO 639-1 code: pt, the sets are Brazilian; zh, num2words
# has no Chinese, and its Japanese kanji numerals are the Chinese ones for the numbers in the sets.
NUM2WORDS_LANG = {"pt": "pt_BR", "zh": "ja"}
SPACELESS = frozenset({"ja", "zh"})  # scripts written without spaces: CER compares characters only
_THOUSANDS = re.compile(r"(?<=\d)[ \u00a0\u202f.,](?=\d{3}(?!\d))")
_DIGITS = re.compile(r"\d+")


def languages() -> list[str]:
    """The languages that have a sentence set."""
    return sorted(p.stem for p in SET_DIR.glob("*.txt"))


def load_set(lang: str) -> list[str]:
    """The sentences of ``lang`` (blank lines and ``#`` comments skipped)."""
    lines = (SET_DIR / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


def spell_numbers(text: str, language: str) -> str:
    """Digit runs in ``text`` as cardinal words of ``language`` (num2words); thousands separators ("3 776",
    "3,776") are joined first. A language num2words does not know keeps its digits."""
    from num2words import num2words

    text = _THOUSANDS.sub("", text)
    lang = NUM2WORDS_LANG.get(language, language)

    def words(match: re.Match[str]) -> str:
        try:
            return f" {num2words(int(match.group()), lang=lang)} "
        except (NotImplementedError, OverflowError):
            return match.group()

    return _DIGITS.sub(words, text)


def normalise(text: str, language: str | None = None) -> str:
    """What CER compares: NFKC, lowercase, ё→е, numbers in words (when ``language`` is given), punctuation and
    symbols dropped, spaces collapsed (removed for ja/zh)."""
    text = unicodedata.normalize("NFKC", text).lower().replace("ё", "е")
    if language:
        text = spell_numbers(text, language).lower().replace("ё", "е")
    text = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in text)
    return "".join(text.split()) if language in SPACELESS else " ".join(text.split())


def edit_distance(a: str, b: str) -> int:
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(a, b))


def cer(reference: str, hypothesis: str, language: str | None = None) -> float:
    """Character error rate of ``hypothesis`` against ``reference`` (both normalised alike)."""
    ref, hyp = normalise(reference, language), normalise(hypothesis, language)
    return edit_distance(ref, hyp) / max(1, len(ref))


def tts_text(text: str, language: str) -> str | None:
    """The sentence as the project's TTS text normaliser (pipelines/normalize.py, what TTSStage gives the
    engine) rewrites it for ``language``."""
    from pipelines.normalize import normalize

    return normalize(text, language)


def sentence_errors(text: str, heard: str, language: str) -> tuple[int, int]:
    """(edits, reference characters) of a transcript against the closest reference form of ``text``."""
    forms = [text] + [f for f in (tts_text(text, language),) if f and f != text]
    hyp = normalise(heard, language)
    scored = []
    for form in forms:
        ref = normalise(form, language)
        scored.append((edit_distance(ref, hyp) / max(1, len(ref)), edit_distance(ref, hyp), len(ref)))
    _, edits, length = min(scored)
    return edits, max(1, length)


def score(sentences: Sequence[str], heard: Sequence[str], language: str) -> dict[str, float]:
    """Corpus CER: all edits / all reference characters, each sentence's edits capped at its length (a
    transcript that loops, as Whisper does on some synthetic speech, counts as that sentence wholly lost, not
    twenty times lost); ``cer_uncapped`` without the cap; the per-sentence median and worst (uncapped)."""
    pairs = [sentence_errors(t, h, language) for t, h in zip(sentences, heard, strict=True)]
    per = sorted(e / n for e, n in pairs)
    chars = sum(n for _, n in pairs)
    return {
        "cer": sum(min(e, n) for e, n in pairs) / chars,
        "cer_uncapped": sum(e for e, _ in pairs) / chars,
        "cer_median": per[len(per) // 2],
        "cer_max": per[-1],
    }


def _rss_mb() -> float:
    """This process's resident memory now (MB)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its waited-for children (espeak-ng runs as one)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def synth_child(lang: str, voice: str, out_dir: Path, count: int) -> dict[str, Any]:
    """In a child process: ``voice`` speaks the first ``count`` sentences of ``lang`` through TTSStage, one
    stage call as a job makes it, into out_dir/NN.wav. Returns the figures (printed as JSON)."""
    from configs.settings import get_settings
    from pipelines.media import write_wav
    from pipelines.schema import Translation
    from pipelines.tts import TTSStage

    settings = get_settings()
    settings.tts.voices = {**settings.tts.voices, lang: voice}
    stage = TTSStage(settings.tts, settings.storage.models_dir)
    sentences = load_set(lang)[:count]
    rss_before_mb = _rss_mb()
    t0 = time.perf_counter()
    used = stage.voice_for(lang)
    stage([Translation(-1, "1", "1")], lang)  # loads the voice and the text normaliser: counted as load, not speed
    load_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), _cpu_s()
    clips = stage([Translation(i, text, text) for i, text in enumerate(sentences)], lang)
    wall_s, cpu_s = time.perf_counter() - t0, _cpu_s() - cpu0
    for clip in clips:
        write_wav(out_dir / f"{clip.id:02d}.wav", clip.samples, clip.sample_rate_hz)
    return {
        "lang": lang,
        "voice": used,
        "audio_s": sum(c.duration_s for c in clips),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "load_s": load_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "subprocess_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "rss_before_mb": rss_before_mb,
        "engine_rss_mb": _rss_mb() - rss_before_mb,
    }


def candidate_voices(lang: str, models_dir: Path) -> list[str]:
    """espeak-ng and every installed catalog voice of ``lang`` (opt-in ones too: measured, never defaults)."""
    from pipelines.tts import espeak_voice_for
    from pipelines.voices import CATALOG, is_installed

    return [f"espeak:{espeak_voice_for(lang)}"] + [
        v.id for v in CATALOG.values() if lang in v.languages and is_installed(v, models_dir)
    ]


def select_voices(lang: str, models_dir: Path, wanted: Sequence[str] | None) -> list[str]:
    """The voices to run for ``lang``: all candidates, or those of ``wanted`` that speak it; ``LANG=VOICE``
    entries of ``wanted`` add a voice for that language only (e.g. ``pt=espeak:pt-br``)."""
    candidates = candidate_voices(lang, models_dir)
    if not wanted:
        return candidates
    forced = [w.split("=", 1)[1] for w in wanted if "=" in w and w.split("=", 1)[0] == lang]
    plain = {w.lower() for w in wanted if "=" not in w}
    return [v for v in candidates if v.lower() in plain or v in forced] + [v for v in forced if v not in candidates]


def voice_facts(voice: str) -> dict[str, Any]:
    """Licence and default eligibility of a voice spec (catalog, else espeak-ng/other)."""
    from pipelines.voices import CATALOG, ESPEAK_LICENCE

    v = CATALOG.get(voice)
    if v is not None:
        return {"engine": v.engine, "licence": v.licence, "default_eligible": v.default_eligible, "opt_in": v.opt_in}
    engine = voice.split(":", 1)[0]
    return {"engine": engine, "licence": ESPEAK_LICENCE if engine == "espeak" else "", "default_eligible": True,
            "opt_in": False}  # fmt: skip


def measured_default(rows: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(voice, why) the catalog's rule picks from one language's rows: lowest CER among default-eligible
    catalog voices, speed breaking ties, never worse than espeak-ng; else espeak-ng."""
    espeak = [r for r in rows if r["engine"] == "espeak"]
    best_espeak = min((r["cer"] for r in espeak), default=None)
    eligible = [
        r for r in rows if r["engine"] != "espeak" and r["default_eligible"]
        and (best_espeak is None or r["cer"] < best_espeak)
    ]  # fmt: skip
    if eligible:
        best = min(eligible, key=lambda r: (round(r["cer"], 4), -r["speed_x"]))
        return best["voice"], "lowest CER of the eligible catalog voices"
    why = "no catalog voice" if len(espeak) == len(rows) else "no eligible catalog voice better than espeak-ng"
    return (espeak[0]["voice"] if espeak else ""), f"espeak-ng ({why})"


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {"cpu": cpu, "cpus": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def markdown(result: dict[str, Any]) -> str:
    rows = result["voices"]
    out = [
        (
            "| lang | voice | licence | default-eligible | CER | median | worst | speed (wall) | speed (CPU) | load s "
            "| peak RSS MB | voice adds MB |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        chosen = result["defaults"][r["lang"]]["voice"] == r["voice"]
        name = f"**`{r['voice']}`**" if chosen else f"`{r['voice']}`"
        out.append(
            f"| {r['lang']} | {name} | {r['licence']} | {'yes' if r['default_eligible'] else 'no (opt-in)'} "
            f"| {r['cer'] * 100:.1f} % | {r['cer_median'] * 100:.1f} % | {r['cer_max'] * 100:.0f} % "
            f"| {r['speed_x']:.2f}× | {r.get('speed_cpu_x', float('nan')):.2f}× | {r['load_s']:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {r['engine_rss_mb']:.0f} |"
        )
    out += ["", "| engine | speed: s of audio / s wall | s of audio / CPU s | peak RSS MB (max) | voice adds MB (max) |",
            "|---|---|---|---|---|"]  # fmt: skip
    for engine, e in result["engines"].items():
        out.append(
            f"| {engine} | {e['speed_x']:.2f}× | {e.get('speed_cpu_x', float('nan')):.2f}× | {e['peak_rss_mb']:.0f} "
            f"| {e['engine_rss_mb']:.0f} |"
        )
    out += ["", "| lang | default by measurement | CER | ≤ 5 % | why |", "|---|---|---|---|---|"]
    for lang, d in result["defaults"].items():
        out.append(
            f"| {lang} | `{d['voice']}` | {d['cer'] * 100:.1f} % | {'yes' if d['meets_5pct'] else '**no**'} | {d['why']} |"
        )
    return "\n".join(out) + "\n"


def _synth(lang: str, voice: str, clips: Path, count: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, __file__, "--child", lang, voice, str(clips), str(count)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def run(
    langs: Sequence[str], wanted: Sequence[str] | None, count: int, out: Path | None, jobs: int = 1
) -> dict[str, Any]:
    """Synthesise in up to ``jobs`` child processes at once (the slow engines first) while this process, with
    Whisper loaded once, transcribes the clips of each finished voice."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from configs.settings import get_settings
    from pipelines.asr import WhisperASR

    settings = get_settings()
    models_dir = settings.storage.models_dir
    started = time.time()
    asr = WhisperASR(settings.asr, models_dir)
    rows: list[dict[str, Any]] = []
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT)}
    load_before = os.getloadavg()
    work = [(lang, voice) for lang in langs for voice in select_voices(lang, models_dir, wanted)]
    work.sort(key=lambda w: w[1].split(":")[0] in ("espeak", "rhvoice", "mbrola"))  # stable: slow engines first
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        pending = {}
        for lang, voice in work:
            clips = Path(tmp) / f"{lang}_{voice.replace(':', '_').replace('/', '_')}"
            clips.mkdir()
            pending[pool.submit(_synth, lang, voice, clips, count, env)] = (lang, voice, clips)
        for future in as_completed(pending):
            lang, voice, clips = pending[future]
            child = future.result()
            if child.returncode != 0:
                print(f"{lang} {voice}: failed: {child.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            sentences = load_set(lang)[:count]
            heard = [
                " ".join(s.text for s in asr(clips / f"{i:02d}.wav", language=lang).segments).strip()
                for i in range(len(sentences))
            ]
            row = {**figures, **voice_facts(figures["voice"]), **score(sentences, heard, lang),
                   "speed_x": figures["audio_s"] / figures["wall_s"],
                   "speed_cpu_x": figures["audio_s"] / max(figures["cpu_s"], 1e-9),
                   "sentences": len(sentences), "heard": heard}  # fmt: skip
            rows.append(row)
            if out:  # what is done so far survives an interrupted run
                out.parent.mkdir(parents=True, exist_ok=True)
                out.with_suffix(".partial.json").write_text(json.dumps(rows, ensure_ascii=False))
            print(
                f"{lang} {row['voice']:<28} CER {row['cer'] * 100:5.1f} % (median {row['cer_median'] * 100:4.1f} %, "
                f"worst {row['cer_max'] * 100:5.1f} %)  {row['speed_x']:6.1f}x wall {row['speed_cpu_x']:6.1f}x CPU  "
                f"load {row['load_s']:.1f} s  peak RSS {row['peak_rss_mb']:.0f} MB (+{row['engine_rss_mb']:.0f})",
                flush=True,
            )
    rows.sort(key=lambda r: (list(langs).index(r["lang"]), r["engine"] != "espeak", r["voice"]))
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "wall_s": time.time() - started,
        "whisper": settings.asr.model,
    }
    return finish(summarise(rows, meta), out)


def summarise(rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The result: ``meta``, the rows, per-engine speed and memory, and per language the measured default."""
    engines: dict[str, dict[str, float]] = {}
    for engine in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == engine]
        engines[engine] = {
            "speed_x": sum(r["audio_s"] for r in mine) / sum(r["wall_s"] for r in mine),
            "speed_cpu_x": sum(r["audio_s"] for r in mine) / sum(r.get("cpu_s", r["wall_s"]) for r in mine),
            "peak_rss_mb": max(max(r["peak_rss_mb"], r["subprocess_peak_rss_mb"]) for r in mine),
            "engine_rss_mb": max(r["engine_rss_mb"] for r in mine),
        }
    defaults = {}
    for lang in dict.fromkeys(r["lang"] for r in rows):
        voice, why = measured_default([r for r in rows if r["lang"] == lang])
        cer_of = next((r["cer"] for r in rows if r["lang"] == lang and r["voice"] == voice), float("nan"))
        defaults[lang] = {"voice": voice, "cer": cer_of, "why": why, "meets_5pct": cer_of <= 0.05}
    return {**meta, "cer_method": CER_METHOD, "voices": rows, "engines": engines, "defaults": defaults}


CER_METHOD = (
    "corpus CER (each sentence's edits capped at its length) after normalise(): NFKC, lowercase, ё→е, "
    "digits→num2words on both sides, punctuation/symbols dropped; closest of the written and TTS-normalised reference"
)


def finish(result: dict[str, Any], out: Path | None) -> dict[str, Any]:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


def rescore(paths: Sequence[Path], out: Path | None) -> dict[str, Any]:
    """Score saved runs' transcripts again (the scoring changed, or a normaliser arrived) and put several runs'
    rows together (a later row of the same language and voice wins): no synthesis, no Whisper."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    parts = []
    for path in paths:
        saved = json.loads(path.read_text(encoding="utf-8"))
        for r in saved["voices"]:
            sentences = load_set(r["lang"])[: r["sentences"]]
            rows[(r["lang"], r["voice"])] = {**r, **score(sentences, r["heard"], r["lang"])}
        parts.append({k: v for k, v in saved.items() if k not in ("voices", "engines", "defaults", "cer_method")})
    order = languages()
    ordered = sorted(rows.values(), key=lambda r: (order.index(r["lang"]), r["engine"] != "espeak", r["voice"]))
    meta = parts[0] if len(parts) == 1 else {"runs": parts}
    return finish(summarise(ordered, meta), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", nargs="+", default=None, help="languages (default: every bench/tts_set file)")
    parser.add_argument("--voices", nargs="+", default=None, help="only these voices; LANG=VOICE adds one")
    parser.add_argument("--sentences", type=int, default=1000, help="the first N sentences of each set")
    parser.add_argument("--out", type=Path, default=Path("var/bench/tts_cer.json"))
    parser.add_argument("--jobs", type=int, default=1, help="voices synthesised at once (child processes)")
    parser.add_argument(
        "--rescore", type=Path, nargs="+", default=None, help="score saved --out JSONs again (together)"
    )
    parser.add_argument("--child", nargs=4, metavar=("LANG", "VOICE", "DIR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        lang, voice, folder, count = args.child
        print(json.dumps(synth_child(lang, voice, Path(folder), int(count))))
        return
    if args.rescore:
        rescore(args.rescore, args.out)
        return
    langs = args.lang or languages()
    unknown = sorted(set(langs) - set(languages()))
    if unknown:
        parser.error(f"no sentence set for {', '.join(unknown)} (have: {', '.join(languages())})")
    run(langs, args.voices, args.sentences, args.out, args.jobs)


if __name__ == "__main__":
    main()
