"""Where one translation request's time goes: prompt evaluation, generation, and the rest (sampling with or
without the JSON grammar, detokenising, Python), by llama.cpp's own perf counters.

    PYTHONPATH=$PWD .venv/bin/python bench/translate_profile.py [--threads 1] [--lines 6] [--rounds 2]

One model load; the translator's real prompt for ``--lines`` lines of the first en passage of bench/mt_set (en→ru),
sent once cold, then ``--rounds`` times with the grammar and without it, in turns (the repeated prompt is fully
cached, so those calls measure generation and sampling only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.llm import cpu_description
from bench.mt import load_direction
from configs.settings import Settings
from pipelines.prompts import system_prompt
from pipelines.schema import Sentence
from pipelines.translate import LLMTranslator, _TranslateCall, batch_schema, make_translator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lines", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import llama_cpp

    s = Settings()
    translator: LLMTranslator = make_translator(s.translator.model_copy(update={"n_threads": args.threads}),
                                                s.storage.models_dir)
    llm = translator.backend._llm  # type: ignore[attr-defined]
    src, _ = load_direction("en-ru", None, 1)
    sentences = [Sentence(id=i, start_s=0, end_s=1, text=t) for i, t in enumerate(src[0])]
    job = _TranslateCall(sentences, "en", "ru", None, system_prompt("en", "ru"))
    positions = list(range(2, 2 + args.lines))
    messages = translator._messages(job, positions, "")
    schema = batch_schema([str(k) for k in range(1, args.lines + 1)])
    budget = translator._budget(job, positions)

    def run(label: str, constrained: bool) -> None:
        llama_cpp.llama_perf_context_reset(llm.ctx)
        t = time.perf_counter()
        out = translator.backend.complete(messages, json_schema=schema if constrained else None, max_tokens=budget)
        wall = time.perf_counter() - t
        p = llama_cpp.llama_perf_context(llm.ctx)
        print(json.dumps({"call": label, "wall_s": round(wall, 2), "prompt_tokens": p.n_p_eval,
                          "prompt_s": round(p.t_p_eval_ms / 1000, 2), "generated": p.n_eval,
                          "generate_s": round(p.t_eval_ms / 1000, 2),
                          "rest_s": round(wall - (p.t_p_eval_ms + p.t_eval_ms) / 1000, 2),
                          "load": round(os.getloadavg()[0], 1), "answer": out[:60]}, ensure_ascii=False), flush=True)

    print(f"CPU: {cpu_description()}", flush=True)
    run("cold, grammar", True)
    for _ in range(args.rounds):
        run("grammar", True)
        run("no grammar", False)


if __name__ == "__main__":
    main()
