"""Translation quality on the reference set (bench/mt_set): chrF per direction, share of lines flagged,
mixed-script words, runs of another writing system's letters (Chinese in Russian...), Latin words left in a
non-Latin target, and seconds per sentence.

    .venv/bin/python bench/mt.py                                   # this checkout, settings from VT_ env
    .venv/bin/python bench/mt.py --set context_sentences=0         # any translator setting, by flag
    .venv/bin/python bench/mt.py --checkout base=/work/wt-base     # another checkout in the same run
    .venv/bin/python bench/mt.py --variant noctx:context_sentences=0 --variant fewshot:prompt_examples=true
    .venv/bin/python bench/mt.py --directions en-ru,ru-en --limit 5 --json var/bench/mt.json

Candidates: this checkout with the settings from the environment (``VT_TRANSLATOR__...``) and ``--set``, plus
each ``--checkout NAME=DIR`` (the same settings; a setting that checkout does not know is ignored there) and
each ``--variant NAME:key=value,...`` (this checkout, more overrides). Each candidate runs in its own process
(the checkout's ``pipelines`` on ``sys.path``) and loads the model once per direction; candidates take turns
direction by direction, so a noisy neighbour hits them alike. One passage of the set is one translation job.
Seconds per sentence exclude the model load. ``--limit N`` keeps the first N lines of each passage,
``--passages N`` the first N passages.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SET_DIR = Path(__file__).resolve().parent / "mt_set"
DIRECTIONS = ("en-ru", "en-es", "en-de", "ru-en", "es-en")

sys.path.insert(0, str(ROOT))

from bench.llm import cpu_description
from pipelines.quality import foreign_script, latin_leftovers, mixed_script_words

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from configs.settings import Settings, TranslatorSettings
    from pipelines.schema import Sentence
    from pipelines.translate import make_translator

    spec = json.loads(sys.stdin.read())
    settings = Settings()
    fields = set(TranslatorSettings.model_fields)
    ignored = sorted(k for k in spec["overrides"] if k not in fields)
    values = {**settings.translator.model_dump(), **{k: v for k, v in spec["overrides"].items() if k in fields}}
    translator = make_translator(TranslatorSettings.model_validate(values), settings.storage.models_dir)
    passages = []
    for lines in spec["passages"]:
        sentences = [Sentence(id=i, start_s=3.0 * i, end_s=3.0 * i + 2.5, text=t) for i, t in enumerate(lines)]
        t0 = time.perf_counter()
        result = translator.translate(sentences, source_language=spec["source"], target_language=spec["target"])
        passages.append({"seconds": time.perf_counter() - t0, "texts": [t.text for t in result],
                         "flags": [list(t.flags) for t in result]})
    print(json.dumps({"passages": passages, "ignored": ignored}, ensure_ascii=False))
    """
)


def load_direction(direction: str, limit: int | None, passages_n: int | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """Source and reference passages of ``direction`` (lines under each ``#`` header, first ``limit``; the first
    ``passages_n`` passages)."""
    source, target = direction.split("-")
    folder = SET_DIR / source
    out: list[list[list[str]]] = []
    for lang in (source, target):
        passages: list[list[str]] = []
        for line in (folder / f"{lang}.txt").read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                passages.append([])
            elif line.strip():
                passages[-1].append(line.strip())
        out.append([p[:limit] for p in passages[:passages_n]])
    src, ref = out
    if [len(p) for p in src] != [len(p) for p in ref]:
        raise SystemExit(f"{direction}: source and reference passages differ in length")
    return src, ref


def run_candidate(checkout: Path, overrides: dict[str, Any], direction: str, passages: list[list[str]]) -> dict[str, Any]:
    source, target = direction.split("-")
    spec = {"overrides": overrides, "source": source, "target": target, "passages": passages}
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(spec), capture_output=True, text=True,
                          env=env, cwd=checkout, check=False, timeout=7200)
    if proc.returncode != 0:
        raise SystemExit(f"{checkout} {direction}: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def score(direction: str, run: dict[str, Any], refs: list[list[str]]) -> dict[str, Any]:
    import sacrebleu

    target = direction.split("-")[1]
    hyps = [t for p in run["passages"] for t in p["texts"]]
    flags = [f for p in run["passages"] for f in p["flags"]]
    flat_refs = [r for p in refs for r in p]
    mixed = [w for h in hyps for w in mixed_script_words(h)]
    foreign = [w for h in hyps for w in foreign_script(h, target)]
    latin = [w for h in hyps for w in latin_leftovers(h, target)]
    seconds = sum(p["seconds"] for p in run["passages"])
    return {
        "chrf": round(sacrebleu.corpus_chrf(hyps, [flat_refs]).score, 2),
        "flagged_share": round(sum(bool(f) for f in flags) / len(hyps), 3),
        "flags": sorted({x for f in flags for x in f}),
        "mixed_script_words": mixed,
        "foreign_script": foreign,
        "latin_leftovers": latin,
        "s_per_sentence": round(seconds / len(hyps), 2),
        "sentences": len(hyps),
        "ignored_settings": run.get("ignored", []),
        "hypotheses": hyps,
    }


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON where they can be (numbers, true/false), else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected key=value, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--directions", default=",".join(DIRECTIONS))
    ap.add_argument("--limit", type=int, help="first N lines of each passage")
    ap.add_argument("--passages", type=int, help="first N passages of each direction")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a translator setting")
    ap.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR", help="another checkout to run")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,K=V", help="this checkout, more settings")
    ap.add_argument("--no-current", action="store_true", help="leave out this checkout with the base settings")
    ap.add_argument("--json", type=Path, help="write scores and translations here")
    args = ap.parse_args()
    base = parse_overrides(args.set)
    candidates: list[tuple[str, Path, dict[str, Any]]] = []
    for spec in args.checkout:
        name, _, path = spec.partition("=")
        candidates.append((name, Path(path).resolve(), base))
    if not args.no_current:
        candidates.append(("current", ROOT, base))
    for spec in args.variant:
        name, _, pairs = spec.partition(":")
        candidates.append((name, ROOT, {**base, **parse_overrides([p for p in pairs.split(",") if p])}))
    directions = [d.strip() for d in args.directions.split(",") if d.strip()]
    print(f"CPU: {cpu_description()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"settings: {base or 'defaults/VT_ env'}; started {time.strftime('%H:%M:%S')}", flush=True)
    results: dict[str, dict[str, Any]] = {name: {} for name, _, _ in candidates}
    for direction in directions:
        src, refs = load_direction(direction, args.limit, args.passages)
        for name, checkout, overrides in candidates:
            res = score(direction, run_candidate(checkout, overrides, direction, src), refs)
            results[name][direction] = res
            extra = f" (ignored: {', '.join(res['ignored_settings'])})" if res["ignored_settings"] else ""
            if args.json:  # written as it goes, so a long run can be read (or stopped) half way
                write_json(args.json, base, results)
            print(f"{direction} {name:>10}: chrF {res['chrf']:6.2f}  flagged {res['flagged_share']:.0%}  "
                  f"mixed {len(res['mixed_script_words'])}  foreign {len(res['foreign_script'])}  "
                  f"latin {len(res['latin_leftovers'])}  "
                  f"{res['s_per_sentence']:.2f} s/sentence{extra}", flush=True)
    print()
    print(f"{'candidate':>10} " + " ".join(f"{d:>7}" for d in directions) + "   mean  flagged  mixed  foreign  latin  s/sent")
    first = None
    for name, _, _ in candidates:
        rows = [results[name][d] for d in directions]
        mean = statistics.mean(r["chrf"] for r in rows)
        first = first if first is not None else mean
        sents = sum(r["sentences"] for r in rows)
        flagged = sum(r["flagged_share"] * r["sentences"] for r in rows) / sents
        per_s = sum(r["s_per_sentence"] * r["sentences"] for r in rows) / sents
        print(f"{name:>10} " + " ".join(f"{r['chrf']:7.2f}" for r in rows) + f" {mean:6.2f}  {flagged:6.1%}"
              f"  {sum(len(r['mixed_script_words']) for r in rows):5d}  {sum(len(r['foreign_script']) for r in rows):7d}"
              f"  {sum(len(r['latin_leftovers']) for r in rows):5d}"
              f"  {per_s:6.2f}  ({mean - first:+.2f})")
    if args.json:
        write_json(args.json, base, results)
    return 0


def write_json(path: Path, settings: dict[str, Any], results: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cpu": cpu_description(), "settings": settings, "results": results},
                               ensure_ascii=False, indent=1))


if __name__ == "__main__":
    sys.exit(main())
