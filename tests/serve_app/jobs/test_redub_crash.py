"""A re-dub's publish survives a SIGKILL at every point (issue 12, items 6 and 8).

A worker process (``redub_crash.py``) is killed right after each file-system change it makes once the new
version is rendered, one kill per run, each on a fresh copy of the same finished job. After every kill a
reader sees one complete version (all of v1 or all of v2, never a mix) and the archived v1, if there is one
yet, is the real v1; then a second worker takes the job over and finishes it: v2 is served and v1 is kept,
byte for byte. The last run is not killed (the re-dub ended first), which proves every point was covered.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.schema import JobRequest
from serve_app.jobs.models import JobState
from serve_app.jobs.redub import load_report, request_redub, version_files, versions_dir
from serve_app.jobs.wiring import build_job_service
from serve_app.jobs.worker import JobWorker
from tests.conftest import make_video
from tests.serve_app.jobs.redub_crash import pipeline_for, settings_for

REPO = Path(__file__).resolve().parents[3]
EDIT = "Совсем другая строка."
CHANGED = (".ru.mp4", ".ru.srt", ".ru.vtt", ".report.json")  # what a re-dub of ru remakes


def files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}  # fmt: skip


@pytest.fixture(scope="module")
def finished_v1(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> tuple[Path, str, dict[str, str]]:
    """A root folder (store + storage) holding a finished v1 job (subtitles mode: the publish is the same as a
    dub's, at a third of the cost) with a re-dub of one line queued, the
    job id and v1's files (name -> sha256)."""
    base = tmp_path_factory.mktemp("redub-crash")
    video = make_video(base / "clip.mp4", jfk_flac, 3.0, size="64x48")
    root = base / "var"
    settings = settings_for(root)
    service = build_job_service(settings)
    try:
        record = service.submit(JobRequest(input=str(video), target_languages=["ru"], mode="subtitles"))
        assert JobWorker(service, lambda: pipeline_for(settings)).run_once()
        assert service.get(record.id).state is JobState.SUCCEEDED
        v1 = files(service.storage.job_dir(record.id) / "out")
        first = load_report(service.storage, service.get(record.id))["targets"]["ru"]["sentences"][0]["id"]
        _, changed = request_redub(service, record.id, "ru", [(first, EDIT)])
        assert changed == [first]
    finally:
        service.store.close()
    return root, record.id, v1


def is_v1(out: dict[str, str], v1: dict[str, str]) -> bool:
    return out == v1


def is_v2(out: dict[str, str], v1: dict[str, str], job_dir: Path) -> bool:
    """All of the re-dubbed files are new, every other file is v1's, and the report says version 2."""
    report = next(n for n in out if n.endswith(".report.json"))
    new = {n for n in out if out[n] != v1.get(n)}
    return (
        set(out) == set(v1)
        and new == {n for n in out if n.endswith(CHANGED)}
        and json.loads((job_dir / "out" / report).read_text())["version"] == 2
        and EDIT in next((job_dir / "out" / n).read_text() for n in out if n.endswith(".ru.srt"))
    )


def test_a_killed_redub_leaves_one_complete_version_and_the_real_previous_one(
    finished_v1: tuple[Path, str, dict[str, str]], tmp_path: Path
) -> None:
    base, job_id, v1 = finished_v1
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = 0
    for k in range(40):
        root = tmp_path / f"k{k}"
        shutil.copytree(base, root, symlinks=True)
        proc = subprocess.run([sys.executable, "-m", "tests.serve_app.jobs.redub_crash", str(root), str(k)],
                              check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        settings = settings_for(root)
        service = build_job_service(settings)
        try:
            job_dir = service.storage.job_dir(job_id)
            if proc.returncode == 0:  # the re-dub ended before a K-th change: every point was killed once
                assert killed >= 3 and service.get(job_id).state is JobState.SUCCEEDED
                break
            assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
            killed += 1
            out = files(job_dir / "out")
            where = f"killed after change {k}"
            assert is_v1(out, v1) or is_v2(out, v1, job_dir), f"{where}: out/ mixes versions"
            if version_files(service.storage, job_id, 1):
                assert files(versions_dir(service.storage, job_id) / "v1") == v1, f"{where}: v1 archived wrong"
            # the lease of the dead worker runs out; another worker takes the job over and finishes it
            assert service.store.requeue_interrupted(stale_after_s=0) == [job_id], where
            assert JobWorker(service, functools.partial(pipeline_for, settings)).run_once()
            record = service.get(job_id)
            assert record.state is JobState.SUCCEEDED and record.output_version == 2, (where, record.error)
            assert is_v2(files(job_dir / "out"), v1, job_dir), where
            assert sorted(record.outputs) == sorted(v1)
            assert files(versions_dir(service.storage, job_id) / "v1") == v1, f"{where}: the real v1 is lost"
        finally:
            service.store.close()
        shutil.rmtree(root)
    else:
        pytest.fail("the re-dub never finished: more kill points than expected")


def test_a_redub_taken_over_from_a_hung_worker_is_published_once_and_its_folder_kept(
    finished_v1: tuple[Path, str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 7 on the re-dub path: worker A hangs inside the re-dub's mux; its lease runs out and
    worker B (another store connection) reruns the re-dub. B must not delete A's live folder (before, both
    used ``redub/v2.out`` and B removed it), and A, when it wakes up, must publish nothing."""
    import threading

    import pipelines.mux

    base, job_id, v1 = finished_v1
    root = tmp_path / "var"
    shutil.copytree(base, root, symlinks=True)
    settings = settings_for(root)
    service_a, service_b = build_job_service(settings), build_job_service(settings)
    reached, released = threading.Event(), threading.Event()
    real_mux = pipelines.mux.mux

    def gated_mux(*args: object, **kwargs: object) -> object:
        if threading.current_thread().name == "worker-a":
            reached.set()
            assert released.wait(30)
        return real_mux(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipelines.mux, "mux", gated_mux)
    a = JobWorker(service_a, lambda: pipeline_for(settings), lease_s=0.5, worker_id="a")
    b = JobWorker(service_b, lambda: pipeline_for(settings), lease_s=0.5, worker_id="b")
    hung = threading.Thread(target=a.run_once, name="worker-a")  # no heartbeat thread: its lease runs out
    job_dir = service_b.storage.job_dir(job_id)
    try:
        hung.start()
        assert reached.wait(30)
        a_folders = sorted(job_dir.rglob(".vt-staging-*"))
        assert a_folders  # A's run is in its staging folder(s), mid-run
        import time

        time.sleep(0.7)
        b.heartbeat()  # B's lease sweep: A's lease expired, the job goes back to the queue
        assert b.run_once()
        record = service_b.get(job_id)
        assert record.state is JobState.SUCCEEDED and record.worker_id == "b" and record.output_version == 2
        assert all(p.is_dir() for p in a_folders), "B removed the live folder of A"
    finally:
        released.set()
        hung.join(30)
        service_a.store.close()
    try:
        assert not hung.is_alive()
        assert service_b.get(job_id) == record  # A recorded nothing
        assert is_v2(files(job_dir / "out"), v1, job_dir)
        assert files(versions_dir(service_b.storage, job_id) / "v1") == v1
        assert not any(p.exists() for p in a_folders)  # A's folders went with its run
    finally:
        service_b.store.close()


class _Died(BaseException):
    """The worker process ends here (no handler runs, the store's open transaction is rolled back)."""


def test_an_unrecorded_publish_is_rolled_back_before_another_plans_redub(
    finished_v1: tuple[Path, str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker dies right after swapping in plan X's v2, before the store records it; the job is cancelled
    meanwhile, then edited again (plan Y, also v2). The new run must make Y's v2 (not finish X's) and keep v1."""
    from serve_app.jobs import outputs

    base, job_id, v1 = finished_v1
    root = tmp_path / "var"
    shutil.copytree(base, root, symlinks=True)
    settings = settings_for(root)
    service = build_job_service(settings)
    real_publish = outputs.publish

    def publish_then_die(*args: object, **kwargs: object) -> Path:
        real_publish(*args, **kwargs)  # type: ignore[arg-type]
        raise _Died

    try:
        monkeypatch.setattr(outputs, "publish", publish_then_die)
        with pytest.raises(_Died):
            JobWorker(service, functools.partial(pipeline_for, settings)).run_once()
        monkeypatch.undo()
        job_dir = service.storage.job_dir(job_id)
        assert is_v2(files(job_dir / "out"), v1, job_dir)  # X's v2 is out, the store still says v1, running
        service.cancel(job_id)
        assert service.store.requeue_interrupted(stale_after_s=0) == []  # the cancel wins: cancelled
        assert service.get(job_id).state is JobState.CANCELLED and service.get(job_id).output_version == 1
        first = load_report(service.storage, service.get(job_id))["targets"]["ru"]["sentences"][0]["id"]
        request_redub(service, job_id, "ru", [(first, "Третья версия.")])
        assert JobWorker(service, functools.partial(pipeline_for, settings)).run_once()
        record = service.get(job_id)
        assert record.state is JobState.SUCCEEDED and record.output_version == 2
        srt = next((job_dir / "out" / n).read_text() for n in record.outputs if n.endswith(".ru.srt"))
        assert "Третья версия." in srt and EDIT not in srt
        assert files(versions_dir(service.storage, job_id) / "v1") == v1
    finally:
        service.store.close()
