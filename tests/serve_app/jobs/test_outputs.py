"""A job's versioned output folders and the one-rename publish (serve_app/jobs/outputs.py), on real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from serve_app.errors import OutputNotFound
from serve_app.jobs import outputs
from serve_app.jobs.storage import LocalStorage

NAMES = ("talk.es.mp4", "talk.es.srt", "talk.es.vtt", "talk.report.json")
REPO = Path(__file__).resolve().parents[3]


def run_into(job_dir: Path, mark: str, version: int, previous: int | None = None) -> Path:
    """One attempt writing every output with ``mark``, then published as ``version``."""
    with outputs.attempt(job_dir, version if previous is None else previous) as folder:
        for name in NAMES:
            (folder / name).write_text(mark)
        return outputs.publish(job_dir, folder, version, previous=previous)


def marks(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def test_publish_swaps_the_whole_set_and_keeps_the_previous_version(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "var")
    job_id = "a" * 32
    job_dir = storage.job_dir(job_id)
    assert outputs.current(job_dir) is None
    first = run_into(job_dir, "v1", 1)
    assert (job_dir / "out").is_symlink() and outputs.current(job_dir) == first
    assert marks(job_dir / "out") == dict.fromkeys(NAMES, "v1") and outputs.names(first) == sorted(NAMES)
    with storage.output_path(job_id, "talk.es.mp4").open() as download:  # a download open across the swap
        run_into(job_dir, "v2", 2, previous=1)
        assert download.read() == "v1"  # it keeps reading the version it opened
    assert marks(job_dir / "out") == dict.fromkeys(NAMES, "v2")
    assert marks(job_dir / "versions" / "v1") == dict.fromkeys(NAMES, "v1")
    assert storage.output_path(job_id, "talk.report.json").read_text() == "v2"
    with pytest.raises(OutputNotFound):
        storage.output_path(job_id, ".lock")
    assert sorted(p.name.split("-")[0] for p in (job_dir / "outputs").iterdir()) == ["v1", "v2"]  # no attempt left


def test_readers_never_see_a_mix_while_versions_are_published(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    run_into(job_dir, "0", 1)
    mixed: list[dict[str, str]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen = marks((job_dir / "out").resolve())  # what out/ holds at one instant
            if set(seen) != set(NAMES) or len(set(seen.values())) != 1:
                mixed.append(seen)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(2, 40):
            run_into(job_dir, str(n), n, previous=n - 1)
    finally:
        done.set()
        reader.join(10)
    assert mixed == []
    assert marks(job_dir / "out") == dict.fromkeys(NAMES, "39")


def test_an_older_stores_out_folder_is_adopted_behind_the_link(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    (job_dir / "out").mkdir(parents=True)
    for name in NAMES:
        (job_dir / "out" / name).write_text("old")
    outputs.adopt_legacy(job_dir, 3)
    assert (job_dir / "out").is_symlink() and outputs.folder_version(outputs.current(job_dir)) == 3
    assert marks(job_dir / "out") == dict.fromkeys(NAMES, "old")
    # a crash between adoption's two renames: the folder moved, the link not yet in place
    os.replace(job_dir / "out", job_dir / ".out.adopt")
    outputs.adopt_legacy(job_dir, 3)
    assert marks(job_dir / "out") == dict.fromkeys(NAMES, "old")
    run_into(job_dir, "new", 4, previous=3)
    assert marks(job_dir / "versions" / "v3") == dict.fromkeys(NAMES, "old")


def test_archiving_is_once_and_only_of_the_version_out_holds(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    run_into(job_dir, "v1", 1)
    run_into(job_dir, "v2", 2, previous=1)
    outputs.archive(job_dir, 1)  # a rerun: the archive exists, it stays v1
    outputs.archive(job_dir, 5)  # out holds v2, not v5: nothing is archived under that name
    assert marks(job_dir / "versions" / "v1") == dict.fromkeys(NAMES, "v1")
    assert not (job_dir / "versions" / "v5").exists()
    assert outputs.publish(job_dir, outputs.current(job_dir), 2, previous=1) == outputs.current(job_dir)  # type: ignore[arg-type]


_HOLD = """
import sys, time
from pathlib import Path
from serve_app.jobs import outputs
with outputs.attempt(Path(sys.argv[1]), 2) as folder:  # the job is at v2
    (folder / "talk.es.mp4").write_text("live")
    print(folder, flush=True)
    time.sleep(60)
"""


def test_the_sweep_removes_dead_attempts_and_orphans_but_never_a_live_or_referenced_folder(tmp_path: Path) -> None:
    """Each attempt folder is its worker's own: a live one (another process holding its flock) survives any
    other attempt's sweep; a killed worker's folder and a published folder nothing points at go."""
    job_dir = tmp_path / "job"
    run_into(job_dir, "v1", 1)
    run_into(job_dir, "v2", 2, previous=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _HOLD, str(job_dir)], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]  # fmt: skip
    try:
        live, dead = (Path(p.stdout.readline().strip()) for p in procs)  # type: ignore[union-attr]
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(10)
        orphan = job_dir / "outputs" / "v2-orphan"  # published, then superseded before the finish (a crash)
        orphan.mkdir()
        os.utime(orphan, (0, 0))
        removed = outputs.sweep(job_dir)
        assert sorted(removed) == sorted([dead, orphan])
        assert marks(live) == {"talk.es.mp4": "live"}
        assert marks(job_dir / "out") == dict.fromkeys(NAMES, "v2")
        assert marks(job_dir / "versions" / "v1") == dict.fromkeys(NAMES, "v1")
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


def test_an_unrecorded_newer_publish_is_rolled_back_unless_it_is_the_attempts_own(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    run_into(job_dir, "v1", 1)
    with outputs.attempt(job_dir, 1) as folder:
        (folder / "talk.es.srt").write_text("x")
        mine = outputs.publish(job_dir, folder, 2, previous=1, tag="plan1")
    assert mine.name.startswith("v2-plan1_")
    outputs.reconcile(job_dir, 1, keep=outputs.prefix(2, "plan1"))  # its own plan's rerun: finishes it
    assert outputs.current(job_dir) == mine
    outputs.reconcile(job_dir, 1, keep=outputs.prefix(2, "plan2"))  # another plan: back to the recorded v1
    assert marks(job_dir / "out") == dict.fromkeys(NAMES, "v1")
