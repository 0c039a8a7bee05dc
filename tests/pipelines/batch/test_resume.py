"""Resume: an earlier result stands only with the same request and every output intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.batch import resume
from pipelines.batch.manifest import request_key
from pipelines.fileio import sha256_file
from pipelines.schema import JobRequest


def _done(tmp_path: Path, job: JobRequest) -> dict[str, Any]:
    """A succeeded entry with a report and a subtitle file (no mp4: ffprobe is tested end to end)."""
    outputs = {"report": tmp_path / "a.report.json", "ru.srt": tmp_path / "a.ru.srt"}
    outputs["report"].write_text(json.dumps({"input": job.input}))
    outputs["ru.srt"].write_text("1\n00:00:00,000 --> 00:00:01,000\nпривет\n")
    return {"input": job.input, "status": "succeeded", "request": request_key(job),
            "outputs": {k: str(p) for k, p in outputs.items()}, "checksums": {k: sha256_file(p) for k, p in outputs.items()}}  # fmt: skip


def test_verify_needs_the_same_request_and_intact_outputs(tmp_path: Path) -> None:
    job = JobRequest(input=str(tmp_path / "a.mp4"), target_languages=["ru"], mode="subtitles")
    entry = _done(tmp_path, job)
    assert resume.verify(entry, job) and resume.verify({**entry, "status": "skipped"}, job)
    assert not resume.verify(None, job) and not resume.verify({**entry, "status": "failed"}, job)
    assert not resume.verify(entry, job.model_copy(update={"target_languages": ["es"]}))
    assert not resume.verify({**entry, "checksums": {"report": entry["checksums"]["report"]}}, job)
    (tmp_path / "a.ru.srt").write_text("changed")
    assert not resume.verify(entry, job)
    (tmp_path / "a.ru.srt").unlink()
    assert not resume.verify(entry, job)


def test_plan_skips_what_stands_keeps_what_to_redo_and_fails_clashing_stems(tmp_path: Path) -> None:
    a, b, c, clash = (JobRequest(input=str(tmp_path / n), target_languages=["ru"]) for n in ("a.mp4", "b.mp4", "c.mp4", "x/a.mkv"))
    previous = {a.input: _done(tmp_path, a), b.input: {"input": b.input, "status": "failed", "error": "boom"}}
    entries, todo = resume.plan([a, b, c, clash], previous)
    assert todo == [b, c]
    assert entries[a.input]["status"] == "skipped" and entries[a.input]["timings"] == {}
    assert entries[b.input] == previous[b.input]  # kept until redone, in case this run stops
    assert entries[clash.input]["status"] == "failed" and "same file stem 'a'" in entries[clash.input]["error"]
    assert c.input not in entries
