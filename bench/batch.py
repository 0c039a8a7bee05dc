"""Batch throughput: the Ray Data batch against a plain sequential loop over the CLI's Pipeline, with
the same models and inputs, in one run; then the batch with ASR actor pools of 1 and 2.

    .venv/bin/python bench/batch.py [--inputs 8] [--duration 60] [--to ru] [--mode subtitles] [--pools 1,2]
    .venv/bin/python bench/batch.py --pools 1 --translate-pools 1,2 --translate-threads 1   # issue 17, item 3

Throughput is media seconds per wall second. Every arm starts with cold stage caches and loads its
models inside the measured time (the loop's Pipeline loads them on its first file, the batch's
actors on theirs); Ray's own start-up (``ray.init``) is measured once and reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from bench._media import speech_clip
from configs.settings import Settings
from pipelines.batch import cli as batch
from pipelines.runner import Pipeline
from pipelines.schema import JobRequest


def inputs(n: int, duration_s: float) -> list[Path]:
    """``n`` distinct clips of about ``duration_s`` (lengths differ by 0.5 s, so no two share a cache entry)."""
    folder = Path("var/bench/batch") / f"in-{n}x{int(duration_s)}"
    return [speech_clip(folder / f"clip{i:02d}.mp4", duration_s + 0.5 * i) for i in range(n)]


def settings_for(tmp: Path, name: str, translate_threads: int = 0, **batch: Any) -> Settings:
    s = Settings(_env_file=None)
    s.storage.cache_dir = tmp / f"cache-{name}"  # cold: no stage result from another arm helps
    if translate_threads:
        s.translator.n_threads = translate_threads
    for key, value in batch.items():
        setattr(s.batch, key, value)
    return s


def run_loop(clips: list[Path], tmp: Path, to: str, mode: str) -> dict[str, Any]:
    pipe = Pipeline(settings_for(tmp, "loop"))
    started = time.perf_counter()
    for clip in clips:
        pipe.run(JobRequest(input=str(clip), target_languages=[to], source_language="en", mode=mode), tmp / "out-loop")
    wall = time.perf_counter() - started
    media_s = sum(_duration(c) for c in clips)
    return {"arm": "sequential loop (Pipeline)", "wall_s": round(wall, 1), "media_s": round(media_s, 1),
            "throughput": round(media_s / wall, 3)}  # fmt: skip


def run_batch(clips: list[Path], tmp: Path, to: str, mode: str, asr_actors: int, translate_actors: int = 1,
              translate_threads: int = 0) -> dict[str, Any]:
    name = f"batch-asr{asr_actors}-mt{translate_actors}x{translate_threads or 'auto'}"
    manifest = tmp / f"{name}.jsonl"
    manifest.write_text("".join(json.dumps({"input": str(c.absolute()), "from": "en"}) + "\n" for c in clips))
    s = settings_for(tmp, name, translate_threads, asr_actors=asr_actors, translate_actors=translate_actors)
    code = batch.main(["--input", str(manifest), "--to", to, "--output", str(tmp / f"out-{name}"), "--mode", mode], settings=s)
    summary = json.loads((tmp / f"out-{name}" / "summary.json").read_text())
    arm = f"Ray Data batch, {asr_actors} ASR actor(s), {translate_actors} translation actor(s)"
    arm += f" of {translate_threads} thread(s)" if translate_threads else ""
    return {"arm": arm, "exit_code": code, "wall_s": summary["wall_s"],
            "media_s": summary["media_s"], "throughput": summary["throughput_media_s_per_wall_s"],
            "resources": summary["resources"]}  # fmt: skip


def _duration(path: Path) -> float:
    from pipelines import media

    return media.probe(path).duration_s


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--inputs", type=int, default=8)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--to", default="ru")
    p.add_argument("--mode", choices=["dub", "subtitles"], default="subtitles")
    p.add_argument("--pools", default="1,2", help="ASR actor pool sizes to try")
    p.add_argument("--translate-pools", default="1", help="translation actor pool sizes to try (with each --pools)")
    p.add_argument("--translate-threads", type=int, default=0, help="llama.cpp threads per translation actor (0: auto)")
    p.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()

    import ray

    clips = inputs(args.inputs, args.duration)
    results: dict[str, Any] = {"inputs": len(clips), "duration_s": args.duration, "to": args.to, "mode": args.mode,
                               "cpus": args.num_cpus, "arms": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vt-bench-batch-") as tmp_name:
        tmp = Path(tmp_name)
        results["arms"].append(run_loop(clips, tmp, args.to, args.mode))
        t = time.perf_counter()
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False)
        results["ray_init_s"] = round(time.perf_counter() - t, 1)
        try:
            for size in (int(x) for x in args.pools.split(",")):
                for mt in (int(x) for x in args.translate_pools.split(",")):
                    results["arms"].append(
                        run_batch(clips, tmp, args.to, args.mode, size, mt, args.translate_threads)
                    )
        finally:
            ray.shutdown()
    loop = results["arms"][0]["throughput"]
    for arm in results["arms"]:
        arm["vs_loop"] = round(arm["throughput"] / loop, 3) if loop else None
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
