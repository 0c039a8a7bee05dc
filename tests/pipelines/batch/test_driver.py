"""The Ray Data batch end to end with the real models: success, resume through the stage cache, a corrupt
file on s3:// storage (moto on loopback), SIGTERM then rerun, and a two-node cluster with ``ray job submit``.

All but the two-node test run on the session's one Ray cluster (``ray_cluster``, tests/conftest.py); that
one starts its own two nodes with ``ray start --block`` and always stops them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from configs.settings import Settings
from pipelines.batch import cli
from pipelines.batch import storage_uri as uris
from tests.pipelines.batch.conftest import free_port, read_manifest, read_summary, write_jsonl

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


def audio_streams(path: str) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index", "-of", "csv=p=0", path],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return len(out.split())


def test_batch_of_four_then_resume(ray_cluster: None, media: dict[str, Path], settings: Settings, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for name in ("jfk", "test", "test2", "ru"):
        shutil.copy(media[name], d / media[name].name)
    spec = write_jsonl(
        d / "manifest.jsonl",
        {"input": "jfk.mp4", "from": "en"},
        {"input": "test.mp4", "from": "en"},
        {"input": "test2.mp4", "from": "en"},
        {"input": "ru.mp4", "to": "en", "mode": "dub"},
    )
    out = tmp_path / "out"
    argv = ["--input", str(spec), "--to", "ru", "--output", str(out), "--mode", "subtitles"]
    assert cli.main(argv, settings=settings) == 0

    m = read_manifest(out)
    assert set(m) == {"jfk", "test", "test2", "ru"} and {e["status"] for e in m.values()} == {"succeeded"}
    for e in m.values():
        assert e["error"] is None and e["outputs"] and set(e["checksums"]) == set(e["outputs"])
        assert {"extract", "asr", "translate", "mux"} <= set(e["timings"])
        for name, uri in e["outputs"].items():
            assert uris.sha256(uri) == e["checksums"][name]
    assert m["jfk"]["chunks"] >= 2  # the clip was spread over chunks and put back together
    jfk_report = json.loads(Path(m["jfk"]["outputs"]["report"]).read_text())
    text = " ".join(r["source"] for r in jfk_report["targets"]["ru"]["sentences"]).lower()
    for phrase in ("fellow americans", "what your country can do for you", "what you can do for your country"):
        assert text.count(phrase) == 1, text  # once each: nothing lost or doubled at the chunk borders
    assert re.search("[а-яё]", Path(m["jfk"]["outputs"]["ru.srt"]).read_text().lower())
    assert sorted(m["ru"]["outputs"]) == ["en.mp4", "en.srt", "en.vtt", "report", "source_srt", "source_vtt"]
    assert audio_streams(m["ru"]["outputs"]["en.mp4"]) == 2  # dubbed + original
    assert audio_streams(m["jfk"]["outputs"]["ru.mp4"]) == 1  # subtitles mode keeps the original only
    # Issue 15: diarization and separation ran as stages of their own (the manifest's per-stage timings).
    assert all("diarize" in e["timings"] for e in m.values())
    assert "separate" in m["ru"]["timings"] and not any("separate" in m[k]["timings"] for k in ("jfk", "test", "test2"))
    s = read_summary(out)
    assert s["counts"] == {"total": 4, "succeeded": 4, "failed": 0, "skipped": 0, "pending": 0}
    assert (s["resources"]["diarize_actors"], s["resources"]["separate_actors"]) == (1, 1)
    assert s["media_s"] == pytest.approx(13 + 5 + 4 + 6, abs=0.5) and s["throughput_media_s_per_wall_s"] > 0
    cached = {p: p.stat().st_mtime_ns for p in settings.storage.cache_dir.glob("*/translate.*.json")}
    assert len(cached) == 4  # one per input and target: the translate actors went through the stage cache

    # Resume: delete one output; only that input is redone, the others are verified and skipped.
    Path(m["test"]["outputs"]["ru.srt"]).unlink()
    before = {k: e["finished_at"] for k, e in m.items()}
    assert cli.main(argv, settings=settings) == 0
    m2 = read_manifest(out)
    assert {k: e["status"] for k, e in m2.items()} == {"jfk": "skipped", "test": "succeeded", "test2": "skipped", "ru": "skipped"}
    assert Path(m2["test"]["outputs"]["ru.srt"]).is_file() and m2["jfk"]["finished_at"] == before["jfk"]
    again = {p: p.stat().st_mtime_ns for p in settings.storage.cache_dir.glob("*/translate.*.json")}
    assert again == cached  # the redone input's translation came from the cache (a miss rewrites its entry)
    assert read_summary(out)["counts"]["skipped"] == 3

    # Issue 15: the dub's report has what the CLI's runner gives for the same input (which finds the batch's stem in
    # the stage cache; last, as its own ASR may translate anew).
    ru_report = json.loads(Path(m["ru"]["outputs"]["report"]).read_text())
    from pipelines.runner import Pipeline
    from pipelines.schema import JobRequest

    local = Pipeline(settings).run(JobRequest(input=str(d / "ru.mp4"), target_languages=["en"]), tmp_path / "local").report
    assert "separate" in local["cache_hits"] and set(local) == set(ru_report)
    assert local["background"] == ru_report["background"] == "separate"
    assert local["speakers"] == ru_report["speakers"] and ru_report["speakers"]["count"] >= 1
    speakers = [[row["speaker"] for row in r["targets"]["en"]["sentences"]] for r in (local, ru_report)]
    assert speakers[0] == speakers[1] and speakers[0]


def stage_names(ds: object) -> list[tuple[str, int | None, float | None]]:
    """The lazy dataset's operators, first to last: (name, actor pool size or None for tasks, CPUs asked)."""
    op = ds._logical_plan.dag  # type: ignore[attr-defined]
    found = []
    while op is not None:
        compute = getattr(op, "compute", None)
        cpus = (getattr(op, "ray_remote_args", None) or {}).get("num_cpus")
        found.append((op.name, getattr(compute, "max_size", None), cpus))
        op = op.input_dependencies[0] if op.input_dependencies else None
    return found[::-1]


def test_the_plan_has_diarize_and_separate_stages_of_their_own(ray_cluster: None, settings: Settings, tmp_path: Path) -> None:
    """Issue 15, item 4: diarization (before translation: speakers split sentences) and separation (before the finish
    actors) are map stages with actor pools of their own, sized by batch.diarize_actors / batch.separate_actors;
    a batch that needs neither has neither."""
    from pipelines.batch.dataset import build_dataset
    from pipelines.batch.resources import optional_stages, plan_resources
    from pipelines.schema import JobRequest

    settings.batch.diarize_actors, settings.batch.separate_actors = 2, 3
    jobs = [JobRequest(input=str(tmp_path / "a.mp4"), target_languages=["ru"])]
    res = plan_resources(settings.batch, 8, 0, **optional_stages(jobs, settings))
    stages = [s for s in stage_names(build_dataset(jobs, settings, str(tmp_path), res)) if "Actor" in s[0]]
    assert [(n, size) for n, size, _ in stages] == [
        ("MapBatches(ASRActor)", 1), ("MapBatches(RegroupActor)", 1), ("MapBatches(DiarizeActor)", 2),
        ("MapBatches(TranslateActor)", 1), ("MapBatches(SeparateActor)", 3), ("MapBatches(FinishActor)", 1)]  # fmt: skip
    cpus = {n: c for n, _, c in stages}
    assert cpus["MapBatches(DiarizeActor)"] == cpus["MapBatches(SeparateActor)"] == res.actor_cpus == round(8 / (1 + 1 + 1 + 2 + 3 + 1), 3)
    settings.diarize.enabled = False
    subtitles = [j.model_copy(update={"mode": "subtitles"}) for j in jobs]
    res = plan_resources(settings.batch, 8, 0, **optional_stages(subtitles, settings))
    names = [n for n, _, _ in stage_names(build_dataset(subtitles, settings, str(tmp_path), res))]
    assert not {"MapBatches(DiarizeActor)", "MapBatches(SeparateActor)"} & set(names) and "MapBatches(FinishActor)" in names


def test_corrupt_file_on_s3_storage(ray_cluster: None, moto_s3: str, s3: str, media: dict[str, Path], settings: Settings,
                                    tmp_path: Path) -> None:  # fmt: skip
    for name in ("test", "ru", "bad"):
        uris.upload(media[name], uris.join(s3, "in", media[name].name))
    spec = write_jsonl(tmp_path / "m.jsonl", {"input": "test.mp4", "from": "en"}, {"input": "ru.mp4", "to": "en"}, {"input": "broken.mp4"})
    uris.upload(spec, uris.join(s3, "in", "manifest.jsonl"))
    out = uris.join(s3, "out")
    argv = ["--input", uris.join(s3, "in", "manifest.jsonl"), "--to", "ru", "--output", out, "--mode", "subtitles"]
    assert cli.main(argv, settings=settings) == 1

    m = read_manifest(out)
    assert {k: e["status"] for k, e in m.items()} == {"test": "succeeded", "ru": "succeeded", "broken": "failed"}
    assert "InvalidMedia" in m["broken"]["error"] and "broken.mp4" in m["broken"]["error"]
    assert m["test"]["outputs"]["ru.mp4"] == f"{out}/test.ru.mp4" and uris.exists(f"{out}/test.ru.mp4")
    report = json.loads(uris.read_text(m["ru"]["outputs"]["report"]))
    assert report["input"] == f"{s3}/in/ru.mp4" and report["source_language"] == "ru"
    assert read_summary(out)["counts"]["failed"] == 1
    assert not os.path.exists("s3:")  # nothing went to a local folder named like the URI


def test_sigterm_then_rerun_completes(ray_cluster: None, media: dict[str, Path], settings: Settings, tmp_path: Path) -> None:
    import ray

    d = tmp_path / "in"
    d.mkdir()
    for name in ("jfk", "test", "ru"):
        shutil.copy(media[name], d / media[name].name)
    spec = write_jsonl(d / "m.jsonl", {"input": "jfk.mp4", "from": "en"}, {"input": "test.mp4", "from": "en"}, {"input": "ru.mp4", "to": "en"})
    out = tmp_path / "out"
    argv = ["--input", str(spec), "--to", "ru", "--output", str(out), "--mode", "subtitles"]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
           "VT_STORAGE__CACHE_DIR": str(settings.storage.cache_dir), "VT_BATCH__CHUNK_MAX_S": "8"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.batch", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "manifest.jsonl").is_file() and '"succeeded"' in (out / "manifest.jsonl").read_text():
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == cli.INTERRUPTED, err.decode()[-2000:]
    first = read_manifest(out)
    assert 1 <= sum(e["status"] == "succeeded" for e in first.values()) < 3
    assert read_summary(out)["interrupted"] is True

    assert cli.main(argv, settings=settings) == 0
    m = read_manifest(out)
    assert {e["status"] for e in m.values()} <= {"succeeded", "skipped"} and len(m) == 3
    assert sum(e["status"] == "skipped" for e in m.values()) == len([e for e in first.values() if e["status"] == "succeeded"])
    for stem, lang in (("jfk", "ru"), ("test", "ru"), ("ru", "en")):
        assert (out / f"{stem}.{lang}.mp4").is_file() and (out / f"{stem}.report.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging leftovers


def _ray(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("ray"))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=400, check=False)


def _node(env: dict[str, str], temp_dir: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``ray start --block`` in the foreground: terminating it stops that node and only it (unlike
    ``ray stop --force``, which stops every Ray on the machine, other people's test clusters too)."""
    ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
    own = [x for flag in ports for x in (flag, str(free_port()))]  # the defaults may be taken on a shared box
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--num-cpus", "1", "--disable-usage-stats",
           "--object-store-memory", str(300 * 1024**2), "--temp-dir", str(temp_dir), *own, *args]  # fmt: skip
    with log.open("ab") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)


def _two_nodes(env: dict[str, str], temp_dir: Path, logs: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    """A head (with the dashboard) and a worker node, both ALIVE; returns them and the dashboard's address.

    Ports are picked free and then bound by Ray, so on a busy machine another process can take one in between
    and the head dies at start: then it is tried again on fresh ports (three times at most)."""
    from ray.util.state import list_nodes

    for attempt in range(3):
        port, dash = free_port(), free_port()
        api = f"http://127.0.0.1:{dash}"
        head_log, worker_log = logs / f"head{attempt}.log", logs / f"worker{attempt}.log"
        procs = [_node(env, temp_dir, "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                       "--dashboard-port", str(dash), "--include-dashboard", "true",
                       "--ray-client-server-port", str(free_port()), log=head_log)]  # fmt: skip
        # The worker node gets a temp dir of its own: two nodes sharing one unpack the job's working_dir into
        # the same runtime_resources folder at once, and the driver then finds modules missing.
        worker_dir = temp_dir.with_name(temp_dir.name + "w")
        procs.append(_node(env, worker_dir, "--address", f"127.0.0.1:{port}", log=worker_log))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            try:
                if len([n for n in list_nodes(address=api) if n.state == "ALIVE"]) == 2:
                    return procs, api
            except Exception as exc:  # noqa: BLE001 - the dashboard is not up yet
                print(f"waiting for the nodes: {exc}")
            time.sleep(2)
        _stop(procs)
        tails = "\n".join(f"{p.name}: {p.read_text(errors='replace')[-1500:]}" for p in (head_log, worker_log))
        print(f"attempt {attempt + 1}: the two nodes did not come up\n{tails}")
    raise AssertionError(f"the two nodes did not come up in 3 attempts; logs in {logs}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_nodes_with_ray_job_submit(media: dict[str, Path], tmp_path: Path) -> None:
    from ray.util.state import list_nodes, list_tasks

    d = tmp_path / "in"
    d.mkdir()
    for name in ("test", "test2"):
        shutil.copy(media[name], d / media[name].name)
    out = tmp_path / "out"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = Path(f"/tmp/vt-2n-{os.getpid()}")  # short: Ray's socket paths must fit 107 bytes
    procs, api = _two_nodes(env, temp_dir, tmp_path)
    try:
        runtime_env = {"env_vars": {"VT_STORAGE__CACHE_DIR": str(tmp_path / "cache"), "RAY_AUTH_MODE": "disabled"}}
        submit = ["job", "submit", "--address", api, "--working-dir", str(ROOT), "--runtime-env-json", json.dumps(runtime_env),
                  "--", sys.executable, "-m", "pipelines.batch", "--input", str(d), "--to", "ru", "--from", "en",
                  "--output", str(out), "--mode", "subtitles"]  # fmt: skip
        for _ in range(10):  # the job agent may need a few more seconds than the dashboard
            job = _ray(*submit, env=env)
            if "No available agent" not in job.stderr:
                break
            time.sleep(3)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        m = read_manifest(out)
        assert {e["status"] for e in m.values()} == {"succeeded"} and len(m) == 2
        assert read_summary(out)["cluster"]["nodes"] == 2
        nodes = {n.node_id for n in list_nodes(address=api)}
        ran_on = {t.node_id for t in list_tasks(address=api, limit=10_000) if t.node_id and t.state == "FINISHED"}
        assert len(nodes) == 2 and ran_on == nodes
    finally:
        _stop(procs)
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(temp_dir.with_name(temp_dir.name + "w"), ignore_errors=True)
