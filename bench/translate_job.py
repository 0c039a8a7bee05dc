"""One translation job's requests, one by one: prompt tokens evaluated and seconds, tokens generated and seconds,
whether the JSON grammar was on, by llama.cpp's own perf counters (issue 17: where a job's translate time goes).

    PYTHONPATH=$PWD .venv/bin/python bench/translate_job.py                      # the bench lecture, en→ru, defaults
    PYTHONPATH=$PWD .venv/bin/python bench/translate_job.py --set name_min_count=1 --set batch_size=16 --show

The lecture's paragraphs (``bench/_media.LECTURE``) are split into sentences at . ? ! (what the segmenter gives on
clean speech), translated as one job with the bundled model; ``--set`` takes any translator setting.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._media import LECTURE
from bench.mt import parse_overrides
from configs.settings import Settings
from pipelines.schema import Sentence
from pipelines.translate import make_translator


def lecture_sentences() -> list[Sentence]:
    texts = [t for p in LECTURE for t in re.split(r"(?<=[.?!])\s+", p) if t.strip()]
    return [Sentence(id=i, start_s=3.0 * i, end_s=3.0 * i + 2.5, text=t) for i, t in enumerate(texts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a translator setting")
    ap.add_argument("--to", default="ru")
    ap.add_argument("--show", action="store_true", help="print the translations and the translator's log")
    args = ap.parse_args()
    import llama_cpp

    if args.show:
        logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    s = Settings()
    translator = make_translator(s.translator.model_copy(update=parse_overrides(args.set)), s.storage.models_dir)
    llm = translator.backend._llm  # type: ignore[attr-defined]
    calls: list[dict[str, Any]] = []
    complete = translator.backend.complete

    def measured(messages: list[dict[str, str]], **kw: Any) -> str:
        llama_cpp.llama_perf_context_reset(llm.ctx)
        t = time.perf_counter()
        out = complete(messages, **kw)
        p = llama_cpp.llama_perf_context(llm.ctx)
        calls.append({"wall_s": round(time.perf_counter() - t, 2), "prompt_evaluated": p.n_p_eval,
                      "prompt_s": round(p.t_p_eval_ms / 1000, 2), "generated": p.n_eval,
                      "generate_s": round(p.t_eval_ms / 1000, 2), "grammar": kw.get("json_schema") is not None})
        return out

    translator.backend.complete = measured  # type: ignore[method-assign]
    sentences = lecture_sentences()
    t = time.perf_counter()
    result = translator.translate(sentences, source_language="en", target_language=args.to)
    wall = time.perf_counter() - t
    for call in calls:
        print(json.dumps(call))
    totals = {k: round(sum(c[k] for c in calls), 2) for k in ("prompt_evaluated", "prompt_s", "generated", "generate_s")}
    print(json.dumps({"settings": args.set, "sentences": len(sentences), "requests": len(calls), "wall_s": round(wall, 2),
                      **totals, "flagged": sum(1 for r in result if r.flags), "load": round(os.getloadavg()[0], 1)}))
    if args.show:
        for r in result:
            print(r.text, r.flags or "")


if __name__ == "__main__":
    main()
