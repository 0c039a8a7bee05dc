"""``OUTDIR/manifest.jsonl`` and ``summary.json``: entries in input order, bad lines skipped on reading."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.batch import manifest
from pipelines.schema import JobRequest


def _jobs(*names: str) -> list[JobRequest]:
    return [JobRequest(input=f"/in/{n}.mp4", target_languages=["ru"]) for n in names]


def test_entries_round_trip_in_input_order(tmp_path: Path) -> None:
    a, b, c = _jobs("a", "b", "c")
    entries = {c.input: manifest.failed_entry(c, "boom"), a.input: manifest.failed_entry(a, "bad")}
    manifest.write_manifest(str(tmp_path), [a, b, c], entries)
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["input"] for line in lines] == [a.input, c.input]  # input order; b has no entry yet
    with (tmp_path / "manifest.jsonl").open("a") as fh:
        fh.write("not json\n{}\n")
    loaded = manifest.load_manifest(str(tmp_path))
    assert set(loaded) == {a.input, c.input} and loaded[c.input]["error"] == "boom"
    assert loaded[a.input]["request"] == manifest.request_key(a) and loaded[a.input]["status"] == "failed"
    assert manifest.load_manifest(str(tmp_path / "none")) == {}


def test_summary_counts_and_throughput() -> None:
    a, b, c, d = _jobs("a", "b", "c", "d")
    entries = {
        a.input: {"status": "succeeded", "duration_s": 10.0},
        b.input: {"status": "skipped", "duration_s": 4.0},
        c.input: {"status": "failed", "duration_s": 0.0},
    }
    s = manifest.summarize(entries, [a, b, c, d], wall_s=5.0, interrupted=False)
    assert s["counts"] == {"total": 4, "succeeded": 1, "failed": 1, "skipped": 1, "pending": 1}
    assert (s["media_s"], s["media_s_skipped"], s["throughput_media_s_per_wall_s"]) == (10.0, 4.0, 2.0)
    assert s["interrupted"] is False and manifest.summarize({}, [], wall_s=0.0)["throughput_media_s_per_wall_s"] is None
