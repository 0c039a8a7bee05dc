"""The Ray Data batch, end to end with the real models: success, a corrupt file, resume, SIGTERM,
s3:// storage (moto on loopback) and a two-node cluster with ``ray job submit``.

One local Ray cluster (2 CPUs) serves the whole module; the two-node test starts its own with
``ray start`` and always ends it with ``ray stop --force``.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings
from pipelines import batch
from pipelines import storage_uri as store
from tests.conftest import make_video
from tests.pipelines.test_storage_uri import free_port, make_bucket, s3_env, start_moto

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[dict[str, str]]:
    """The session's local Ray (2 CPUs), with a moto S3 server whose address its workers inherit."""
    import ray

    moto, url = start_moto()
    env = {**s3_env(url), "RAY_AUTH_MODE": "disabled"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    make_bucket(url, "media")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=400 * 1024**2)
    try:
        yield {"gcs": ray.get_runtime_context().gcs_address, **env}
    finally:
        ray.shutdown()
        moto.terminate()
        moto.wait(timeout=10)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("batch-media")
    bad = d / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    return {
        "jfk": make_video(d / "jfk.mp4", DATA / "jfk.flac", 13.0),
        "test": make_video(d / "test.mp4", DATA / "this_is_a_test.mp3", 5.0),
        "test2": make_video(d / "test2.mp4", DATA / "this_is_a_test.mp3", 4.0),
        "ru": make_video(d / "ru.mp4", DATA / "ru_num.wav", 6.0),
        "bad": bad,
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(_env_file=None)
    s.storage.cache_dir = tmp_path / "cache"
    s.batch.chunk_max_s = 8.0  # so the 13 s jfk clip spreads over several chunks
    return s


def manifest(out: Path | str) -> dict[str, dict[str, Any]]:
    lines = store.read_text(store.join(str(out), "manifest.jsonl")).splitlines()
    return {Path(store.basename(e["input"])).stem: e for e in map(json.loads, lines)}


def summary(out: Path | str) -> dict[str, Any]:
    return dict(json.loads(store.read_text(store.join(str(out), "summary.json"))))


def write_manifest(path: Path, *items: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def audio_streams(path: str) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=index", "-of", "csv=p=0", path],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return len(out.split())


def test_batch_of_four_then_resume(ray_cluster: dict[str, str], media: dict[str, Path], settings: Settings, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for name in ("jfk", "test", "test2", "ru"):
        shutil.copy(media[name], d / media[name].name)
    spec = write_manifest(
        d / "manifest.jsonl",
        {"input": "jfk.mp4", "from": "en"},
        {"input": "test.mp4", "from": "en"},
        {"input": "test2.mp4", "from": "en"},
        {"input": "ru.mp4", "to": "en", "mode": "dub"},
    )
    out = tmp_path / "out"
    argv = ["--input", str(spec), "--to", "ru", "--output", str(out), "--mode", "subtitles"]
    assert batch.main(argv, settings=settings) == 0

    m = manifest(out)
    assert set(m) == {"jfk", "test", "test2", "ru"} and {e["status"] for e in m.values()} == {"succeeded"}
    for e in m.values():
        assert e["error"] is None and e["outputs"] and set(e["checksums"]) == set(e["outputs"])
        assert {"extract", "asr", "translate", "mux"} <= set(e["timings"])
        for name, uri in e["outputs"].items():
            assert store.sha256(uri) == e["checksums"][name]
    assert m["jfk"]["chunks"] >= 2  # the clip was spread over chunks and put back together
    jfk_report = json.loads(Path(m["jfk"]["outputs"]["report"]).read_text())
    text = " ".join(r["source"] for r in jfk_report["targets"]["ru"]["sentences"]).lower()
    for phrase in ("fellow americans", "what your country can do for you", "what you can do for your country"):
        assert text.count(phrase) == 1, text  # once each: nothing lost or doubled at the chunk borders
    assert re.search("[а-яё]", Path(m["jfk"]["outputs"]["ru.srt"]).read_text().lower())
    assert sorted(m["ru"]["outputs"]) == ["en.mp4", "en.srt", "en.vtt", "report", "source_srt", "source_vtt"]
    assert audio_streams(m["ru"]["outputs"]["en.mp4"]) == 2  # dubbed + original
    assert audio_streams(m["jfk"]["outputs"]["ru.mp4"]) == 1  # subtitles mode keeps the original only
    s = summary(out)
    assert s["counts"] == {"total": 4, "succeeded": 4, "failed": 0, "skipped": 0, "pending": 0}
    assert s["media_s"] == pytest.approx(13 + 5 + 4 + 6, abs=0.5) and s["throughput_media_s_per_wall_s"] > 0

    # Resume: delete one output; only that input is redone, the others are verified and skipped.
    Path(m["test"]["outputs"]["ru.srt"]).unlink()
    before = {k: e["finished_at"] for k, e in m.items()}
    assert batch.main(argv, settings=settings) == 0
    m2 = manifest(out)
    assert {k: e["status"] for k, e in m2.items()} == {"jfk": "skipped", "test": "succeeded", "test2": "skipped", "ru": "skipped"}
    assert Path(m2["test"]["outputs"]["ru.srt"]).is_file() and m2["jfk"]["finished_at"] == before["jfk"]
    assert summary(out)["counts"]["skipped"] == 3


def test_corrupt_file_on_s3_storage(ray_cluster: dict[str, str], media: dict[str, Path], settings: Settings, tmp_path: Path) -> None:
    root = "s3://media/run1"
    for name in ("test", "ru", "bad"):
        store.upload(media[name], store.join(root, "in", media[name].name))
    spec = write_manifest(tmp_path / "m.jsonl", {"input": "test.mp4", "from": "en"}, {"input": "ru.mp4", "to": "en"}, {"input": "broken.mp4"})
    store.upload(spec, store.join(root, "in", "manifest.jsonl"))
    out = store.join(root, "out")
    argv = ["--input", store.join(root, "in", "manifest.jsonl"), "--to", "ru", "--output", out, "--mode", "subtitles"]
    assert batch.main(argv, settings=settings) == 1

    m = manifest(out)
    assert {k: e["status"] for k, e in m.items()} == {"test": "succeeded", "ru": "succeeded", "broken": "failed"}
    assert "InvalidMedia" in m["broken"]["error"] and "broken.mp4" in m["broken"]["error"]
    assert m["test"]["outputs"]["ru.mp4"] == f"{out}/test.ru.mp4" and store.exists(f"{out}/test.ru.mp4")
    report = json.loads(store.read_text(m["ru"]["outputs"]["report"]))
    assert report["input"] == f"{root}/in/ru.mp4" and report["source_language"] == "ru"
    assert summary(out)["counts"]["failed"] == 1
    assert not os.path.exists("s3:")  # nothing went to a local folder named like the URI


def test_sigterm_then_rerun_completes(ray_cluster: dict[str, str], media: dict[str, Path], settings: Settings, tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    for name in ("jfk", "test", "ru"):
        shutil.copy(media[name], d / media[name].name)
    spec = write_manifest(d / "m.jsonl", {"input": "jfk.mp4", "from": "en"}, {"input": "test.mp4", "from": "en"}, {"input": "ru.mp4", "to": "en"})
    out = tmp_path / "out"
    argv = ["--input", str(spec), "--to", "ru", "--output", str(out), "--mode", "subtitles"]
    env = {**os.environ, "RAY_ADDRESS": ray_cluster["gcs"], "VT_STORAGE__CACHE_DIR": str(settings.storage.cache_dir),
           "VT_BATCH__CHUNK_MAX_S": "8"}  # fmt: skip
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
    assert proc.returncode == 130, err.decode()[-2000:]
    first = manifest(out)
    assert 1 <= sum(e["status"] == "succeeded" for e in first.values()) < 3
    assert summary(out)["interrupted"] is True

    assert batch.main(argv, settings=settings) == 0
    m = manifest(out)
    assert {e["status"] for e in m.values()} <= {"succeeded", "skipped"} and len(m) == 3
    assert sum(e["status"] == "skipped" for e in m.values()) == len([e for e in first.values() if e["status"] == "succeeded"])
    for stem, lang in (("jfk", "ru"), ("test", "ru"), ("ru", "en")):
        assert (out / f"{stem}.{lang}.mp4").is_file() and (out / f"{stem}.report.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging leftovers


def _ray(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("ray"))
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=400, check=False)


def _node(env: dict[str, str], temp_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    """``ray start --block`` in the foreground: terminating it stops that node and only it (unlike
    ``ray stop --force``, which stops every Ray on the machine, other people's test clusters too)."""
    ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
    own = [x for flag in ports for x in (flag, str(free_port()))]  # the defaults may be taken on a shared box
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--num-cpus", "1", "--disable-usage-stats",
           "--object-store-memory", str(300 * 1024**2), "--temp-dir", str(temp_dir), *own, *args]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


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
    port, dash = free_port(), free_port()
    api = f"http://127.0.0.1:{dash}"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = Path(f"/tmp/vt-2n-{os.getpid()}")  # short: Ray's socket paths must fit 107 bytes
    procs = [_node(env, temp_dir, "--head", "--port", str(port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
                   "--include-dashboard", "true", "--ray-client-server-port", str(free_port()))]  # fmt: skip
    try:
        procs.append(_node(env, temp_dir, "--address", f"127.0.0.1:{port}"))
        deadline = time.monotonic() + 180
        while True:
            try:
                if len([n for n in list_nodes(address=api) if n.state == "ALIVE"]) == 2:
                    break
            except Exception as exc:  # noqa: BLE001 - the dashboard is not up yet
                print(f"waiting for the nodes: {exc}")
            assert time.monotonic() < deadline, "the two nodes did not come up"
            time.sleep(2)
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
        m = manifest(out)
        assert {e["status"] for e in m.values()} == {"succeeded"} and len(m) == 2
        assert summary(out)["cluster"]["nodes"] == 2
        nodes = {n.node_id for n in list_nodes(address=api)}
        ran_on = {t.node_id for t in list_tasks(address=api, limit=10_000) if t.node_id and t.state == "FINISHED"}
        assert len(nodes) == 2 and ran_on == nodes
    finally:
        _stop(procs)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_importing_the_batch_module_leaves_ray_out() -> None:
    code = ("import sys, pipelines, pipelines.batch, pipelines.chunking, pipelines.storage_uri; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_resources_fit_two_cores_and_use_gpus_when_present() -> None:
    b = Settings(_env_file=None).batch
    two = batch.plan_resources(b, cluster_cpus=2, cluster_gpus=0)
    assert (two.asr_actors, two.translate_actors, two.tts_actors) == (1, 1, 1)
    assert 3 * two.actor_cpus + two.task_cpus <= 2 and two.task_cpus != two.actor_cpus and two.asr_gpus == 0
    big = batch.plan_resources(b.model_copy(update={"asr_actors": 4, "translate_actors": 2}), cluster_cpus=64, cluster_gpus=8)
    assert big.actor_cpus == 1.0 and big.asr_gpus == big.translate_gpus == 1.0
    shared = batch.plan_resources(b, cluster_cpus=16, cluster_gpus=1)
    assert shared.asr_gpus == shared.translate_gpus == 0.5  # one GPU, two pools: both must fit


def test_read_inputs_from_a_folder_and_a_manifest(tmp_path: Path) -> None:
    from pipelines.schema import JobRequest

    (tmp_path / "b.mp4").write_bytes(b"x")
    (tmp_path / "a.mkv").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    defaults = JobRequest(input="-", target_languages=["ru"], mode="subtitles")
    jobs = batch.read_inputs(str(tmp_path), defaults)
    assert [Path(j.input).name for j in jobs] == ["a.mkv", "b.mp4"] and all(Path(j.input).is_absolute() for j in jobs)
    spec = write_manifest(tmp_path / "m.jsonl", {"input": "b.mp4", "to": "en,de", "mode": "dub"}, {"input": "/abs/c.mp4", "from": "ru"})
    jobs = batch.read_inputs(str(spec), defaults)
    assert jobs[0].input == str(tmp_path / "b.mp4") and jobs[0].target_languages == ["en", "de"] and jobs[0].mode == "dub"
    assert jobs[1].input == "/abs/c.mp4" and jobs[1].source_language == "ru" and jobs[1].target_languages == ["ru"]
    assert not batch.verify(None, jobs[0]) and not batch.verify({"status": "failed"}, jobs[0])
