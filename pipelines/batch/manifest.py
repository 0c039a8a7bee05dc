"""``OUTDIR/manifest.jsonl`` (one line per input: status, outputs with checksums, timings) and ``summary.json``.

The manifest is rewritten whole after every finished file, so a stopped batch leaves what it had done
and a rerun resumes from it (see :mod:`pipelines.batch.resume`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from pipelines.batch import storage_uri as uris
from pipelines.schema import JobRequest

MANIFEST = "manifest.jsonl"
SUMMARY = "summary.json"


def request_key(request: JobRequest) -> dict[str, Any]:
    """What must match for an earlier result to count on a rerun."""
    return request.model_dump(mode="json")


def entry(row: dict[str, Any], request: JobRequest) -> dict[str, Any]:
    """The manifest line of a finished row (see ``rows.DONE_KEYS``)."""
    return {
        "input": row["input"],
        "status": row["status"],
        "error": row["error"] or None,
        "outputs": json.loads(row["outputs"] or "{}"),
        "timings": json.loads(row["timings"] or "{}"),
        "checksums": json.loads(row["checksums"] or "{}"),
        "request": request_key(request),
        "duration_s": round(float(row["duration_s"] or 0.0), 3),
        "chunks": int(row["n_chunks"] or 0),
        "node": row["node"],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def failed_entry(job: JobRequest, error: str) -> dict[str, Any]:
    """The manifest line of a job that failed before or outside the dataset."""
    row = {"input": job.input, "status": "failed", "error": error, "outputs": "{}", "timings": "{}", "checksums": "{}",
           "duration_s": 0.0, "n_chunks": 0, "node": None}  # fmt: skip
    return entry(row, job)


def load_manifest(out: str) -> dict[str, dict[str, Any]]:
    """The entries of an earlier run's ``OUTDIR/manifest.jsonl`` by input (empty when none; bad lines are skipped)."""
    uri = uris.join(out, MANIFEST)
    if not uris.exists(uri):
        return {}
    entries: dict[str, dict[str, Any]] = {}
    for line in uris.read_text(uri).splitlines():
        try:
            item = json.loads(line)
            entries[str(item["input"])] = item
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def write_manifest(out: str, jobs: Sequence[JobRequest], entries: dict[str, dict[str, Any]]) -> None:
    """``OUTDIR/manifest.jsonl``: one line per input that has an entry, in input order (rewritten whole)."""
    lines = [json.dumps(entries[j.input], ensure_ascii=False) for j in jobs if j.input in entries]
    uris.write_text(uris.join(out, MANIFEST), "".join(line + "\n" for line in lines))


def summarize(
    entries: dict[str, dict[str, Any]], jobs: Sequence[JobRequest], wall_s: float, **extra: Any
) -> dict[str, Any]:
    """The batch's counts by status and its throughput (media seconds done per wall second), plus ``extra``."""
    rows = [entries.get(j.input, {"status": "pending"}) for j in jobs]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("succeeded", "failed", "skipped", "pending")}
    done_s = sum(r.get("duration_s", 0.0) for r in rows if r["status"] == "succeeded")
    return {
        "counts": {"total": len(rows), **counts},
        "media_s": round(done_s, 3),
        "media_s_skipped": round(sum(r.get("duration_s", 0.0) for r in rows if r["status"] == "skipped"), 3),
        "wall_s": round(wall_s, 3),
        "throughput_media_s_per_wall_s": round(done_s / wall_s, 3) if wall_s > 0 else None,
        **extra,
    }


def write_summary(out: str, summary: dict[str, Any]) -> None:
    """``OUTDIR/summary.json``."""
    uris.write_text(uris.join(out, SUMMARY), json.dumps(summary, indent=2))
