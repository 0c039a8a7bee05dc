"""On a rerun, which earlier results still stand (verified, then skipped) and which jobs are (re)done."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.batch import storage_uri as uris
from pipelines.batch.manifest import failed_entry, request_key
from pipelines.fileio import sha256_file
from pipelines.schema import JobRequest


def verify(entry: dict[str, Any] | None, request: JobRequest) -> bool:
    """Whether an earlier manifest ``entry`` still stands: same request, every output present with
    its recorded sha256, every mp4 readable by ffprobe, the report valid JSON. Never raises."""
    from pipelines import media

    if not entry or entry.get("status") not in ("succeeded", "skipped") or entry.get("request") != request_key(request):
        return False
    outputs, sums = entry.get("outputs") or {}, entry.get("checksums") or {}
    if not outputs or set(outputs) != set(sums):
        return False
    with tempfile.TemporaryDirectory(prefix="vt-verify-") as tmp:
        try:
            for name, uri in outputs.items():
                local = uris.download(uri, Path(tmp))
                if not local.is_file() or sha256_file(local) != sums[name]:
                    return False
                if name.endswith("mp4"):
                    media.probe(local)
                if name == "report":
                    json.loads(local.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - any doubt means redo
            return False
    return True


Entries = dict[str, dict[str, Any]]  # manifest lines by input


def plan(jobs: Sequence[JobRequest], previous: Entries) -> tuple[Entries, list[JobRequest]]:
    """Split ``jobs`` by what an earlier manifest (``previous``, by input) says: returns the entries
    known now (verified results as ``skipped``; a failure for an input whose output names clash with
    an earlier input's; earlier entries of inputs to redo, kept until redone in case this run stops)
    and the jobs to run, in input order."""
    entries: Entries = {}
    todo: list[JobRequest] = []
    stems: dict[str, str] = {}
    for job in jobs:
        stem = Path(uris.basename(job.input)).stem
        if stems.setdefault(stem, job.input) != job.input:
            entries[job.input] = failed_entry(job, f"output names clash with {stems[stem]} (same file stem {stem!r})")
        elif verify(previous.get(job.input), job):
            entries[job.input] = {**previous[job.input], "status": "skipped", "timings": {}}
        else:
            todo.append(job)
            if job.input in previous:
                entries[job.input] = previous[job.input]
    return entries, todo
