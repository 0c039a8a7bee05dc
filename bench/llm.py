"""Token rate of the bundled GGUF under each llama.cpp build and extra-buffer setting, in one run.

    .venv/bin/python bench/llm.py                                  # the installed build, extra buffers on and off
    .venv/bin/python bench/llm.py --build native=/tmp/llama-native # plus a build unpacked there
                                                                   # (pip install --no-deps --target DIR WHEEL)
    .venv/bin/python bench/llm.py --skip-installed --build portable=DIR1 --build native=DIR2

Each candidate runs in its own process (a build is a different ``llama_cpp`` on ``sys.path``); the candidates
take turns over ``--rounds`` rounds, so a noisy neighbour hits them alike. Per round a candidate loads the
model once and answers the same realistic translation prompt (``--tokens`` generated, temperature 0);
llama.cpp's own perf counters give prompt-evaluation and generation tokens/s. Printed: medians, and each
candidate's generation rate as a ratio to the first one. CPU model and flags are printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import llama_cpp
    from configs.settings import StorageSettings, TranslatorSettings
    from pipelines.backends.llama_cpp import LlamaCppBackend
    from pipelines.translate import LLMTranslator

    extra, tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    settings = TranslatorSettings(backend="llama_cpp", extra_buffers=extra, n_ctx=2048, n_threads=threads)
    t0 = time.perf_counter()
    backend = LlamaCppBackend(settings, StorageSettings().models_dir)
    load_s = time.perf_counter() - t0
    llm = backend._llm
    sentences = [
        "Good morning, everyone, and thank you for coming to today's lecture.",
        "We will talk about how cities grew in the nineteenth century.",
        "Railways changed where people could live and work.",
        "By the end of the hour you should be able to explain why.",
    ]
    messages = [
        {"role": "system", "content": "You translate English subtitles into Russian. Answer with JSON only."},
        {"role": "user", "content": json.dumps({"sentences": dict(enumerate(sentences))}, ensure_ascii=False)},
    ]
    llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=2)  # warm-up
    llama_cpp.llama_perf_context_reset(llm.ctx)
    llm.reset()
    t0 = time.perf_counter()
    out = llm.create_chat_completion(messages=messages, max_tokens=tokens, temperature=0.0)
    wall_s = time.perf_counter() - t0
    perf = llama_cpp.llama_perf_context(llm.ctx)
    print(json.dumps({
        "load_s": load_s, "wall_s": wall_s,
        "prompt_tok_s": perf.n_p_eval / (perf.t_p_eval_ms / 1000) if perf.t_p_eval_ms else None,
        "gen_tok_s": perf.n_eval / (perf.t_eval_ms / 1000) if perf.t_eval_ms else None,
        "n_prompt": perf.n_p_eval, "n_gen": perf.n_eval,
        "extra_buffers": bool(llm.model_params.use_extra_bufts),
        "system_info": llama_cpp.llama_print_system_info().decode(),
        "llama_cpp_file": llama_cpp.__file__,
        "text": out["choices"][0]["message"]["content"][:80],
    }))
    """
)


def cpu_description() -> str:
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = sorted(f for f in flags if f in {"avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"}
                   or f.startswith("amx"))
    return f"{model}, {os.cpu_count()} CPUs; flags: {' '.join(shown)}; AMX: {'yes' if any(f.startswith('amx') for f in flags) else 'no'}"


def run_one(build_dir: str | None, extra: str, tokens: int, threads: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (build_dir, str(ROOT)) if p)}
    proc = subprocess.run([sys.executable, "-c", _CHILD, extra, str(tokens), str(threads)], capture_output=True,
                          text=True, env=env, cwd=ROOT, check=False, timeout=900)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                    help="another llama-cpp-python build, unpacked in DIR (repeatable)")
    ap.add_argument("--skip-installed", action="store_true", help="measure only the --build candidates")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()
    builds: list[tuple[str, str | None]] = [] if args.skip_installed else [("installed", None)]
    for spec in args.build:
        name, _, path = spec.partition("=")
        builds.append((name, path))
    candidates = [(f"{name}/extra={extra}", path, extra) for name, path in builds for extra in ("on", "off")]
    results: dict[str, list[dict[str, object]]] = {c[0]: [] for c in candidates}
    print(f"CPU: {cpu_description()}")
    for r in range(args.rounds):
        for label, path, extra in candidates:
            res = run_one(path, extra, args.tokens, args.threads)
            results[label].append(res)
            shown = res.get("error") or f"gen {res['gen_tok_s']:.2f} tok/s, prompt {res['prompt_tok_s']:.1f} tok/s"
            print(f"round {r + 1} {label}: {shown}", flush=True)
    print()
    base = None
    print(f"{'candidate':32} {'gen tok/s':>10} {'prompt tok/s':>13} {'load s':>7} {'vs first':>9}  build")
    for label, _path, _extra in candidates:
        ok = [r for r in results[label] if "error" not in r]
        if not ok:
            print(f"{label:32} failed: {results[label][0]['error']}")
            continue
        gen = statistics.median(float(r["gen_tok_s"]) for r in ok)  # type: ignore[arg-type]
        prompt = statistics.median(float(r["prompt_tok_s"]) for r in ok)  # type: ignore[arg-type]
        load = statistics.median(float(r["load_s"]) for r in ok)  # type: ignore[arg-type]
        base = base or gen
        feats = str(ok[0]["system_info"]).replace(" = 1", "").replace(" |", "")
        print(f"{label:32} {gen:10.2f} {prompt:13.1f} {load:7.2f} {gen / base:8.2f}x  {feats.strip()}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_description(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
