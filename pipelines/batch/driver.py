"""The driver: the Ray session, the run over the dataset with the manifest kept current, and SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipelines.batch import resume
from pipelines.batch import storage_uri as uris
from pipelines.batch.manifest import entry, failed_entry, load_manifest, summarize, write_manifest, write_summary
from pipelines.batch.resources import optional_stages, plan_resources
from pipelines.batch.rows import reason
from pipelines.schema import JobRequest

if TYPE_CHECKING:
    from configs.settings import Settings

logger = logging.getLogger(__name__)


def say(index: int, total: int, item: dict[str, Any]) -> None:
    """The one-line summary per finished file (stderr; Ray Data's progress bars go there too)."""
    t = item.get("timings") or {}
    stages = " ".join(f"{k} {v:.1f}s" for k, v in t.items() if isinstance(v, (int, float)))
    tail = f"error: {item['error']}" if item["status"] == "failed" else stages
    media_s = item.get("duration_s", 0.0)
    name = uris.basename(item["input"])
    print(f"[{index}/{total}] {item['status']:<9} {name}  {media_s:.1f}s media  {tail}", file=sys.stderr)


def run(jobs: Sequence[JobRequest], settings: Settings, out: str) -> dict[str, Any]:
    """Run a batch inside an initialised Ray session; return the summary (also in ``OUTDIR/summary.json``).

    Earlier results that still stand are skipped (see :func:`pipelines.batch.resume.plan`); the manifest
    is rewritten after each finished file. If the dataset itself fails, the files not done yet are
    recorded as failed; on KeyboardInterrupt the summary says ``interrupted`` and the error propagates.
    """
    import ray

    from pipelines.batch.dataset import build_dataset

    started = time.perf_counter()
    entries, todo = resume.plan(jobs, load_manifest(out))
    redo = {j.input for j in todo}
    for i, job in enumerate(j for j in jobs if j.input in entries and j.input not in redo):
        say(i + 1, len(jobs), entries[job.input])
    write_manifest(out, jobs, entries)
    cluster: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    stages = optional_stages(todo, settings)  # the diarize and separate pools, when the batch needs them
    res = plan_resources(settings.batch, cluster.get("CPU", 1.0), cluster.get("GPU", 0.0), **stages)
    alive = len([n for n in ray.nodes() if n.get("Alive")])  # type: ignore[no-untyped-call]
    extra = {
        "resources": asdict(res),
        "cluster": {"cpus": cluster.get("CPU", 0.0), "gpus": cluster.get("GPU", 0.0), "nodes": alive},
        "chunk_max_s": settings.batch.chunk_max_s,
    }
    by_input = {j.input: j for j in todo}
    finished = len(jobs) - len(todo)
    interrupted = True
    try:
        if todo:
            try:
                for row in build_dataset(todo, settings, out, res).iter_rows():
                    entries[row["input"]] = entry(row, by_input[row["input"]])
                    by_input.pop(row["input"])
                    finished += 1
                    write_manifest(out, jobs, entries)
                    say(finished, len(jobs), entries[row["input"]])
            except Exception as exc:  # the dataset itself failed: the rest are failed, not lost
                logger.exception("the batch stopped early")
                for job in by_input.values():
                    entries[job.input] = failed_entry(job, f"batch aborted: {reason(exc)}")
                write_manifest(out, jobs, entries)
        interrupted = False
    finally:
        summary = summarize(entries, jobs, time.perf_counter() - started, interrupted=interrupted, **extra)
        write_summary(out, summary)
    return summary


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the running Ray session; else join ``address`` / ``RAY_ADDRESS`` (a cluster, or inside
    ``ray job submit``); else start a local one for the duration of the block."""
    import ray

    if ray.is_initialized():
        yield
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the manifest and summary are written and Ray is shut down."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
