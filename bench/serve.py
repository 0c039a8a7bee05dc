"""Service benchmark (issue 3): Serve overhead, cold start, 2 GB upload, job throughput.

    .venv/bin/python bench/serve.py [--only cold,overhead,upload,upload_uvicorn,jobs] [--repeats 20] [--upload-gb 2] [--jobs 4]

Runs on the CPU profile (configs/serve.cpu.yaml) with its storage under a temp folder. Prints one JSON
object per part. Cold start runs `videotranslator serve` in a subprocess (its own Ray), before this
process starts the Ray cluster the other parts use.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import httpx

from bench._media import DATA

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "serve.cpu.yaml"
PORT = 8000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(pct(ms, 0.95), 2)}


def storage_args(root: Path) -> dict[str, Any]:
    return {
        "settings": {
            "storage": {"root": str(root), "cache_dir": str(root / "cache")},
            "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}", "max_queued_jobs": 64},
        }
    }


# ----------------------------------------------------------------------------- cold start


def cold_start(tmp: Path) -> dict[str, Any]:
    """`videotranslator serve` until /readyz answers 200, the dashboard check, then SIGTERM to exit."""
    env = {**os.environ, "VT_STORAGE__ROOT": str(tmp / "cold"), "VT_STORAGE__CACHE_DIR": str(tmp / "cold" / "cache"),
           "VT_SERVICE__JOB_STORE_URL": f"sqlite:///{tmp / 'cold' / 'jobs.db'}"}  # fmt: skip
    cli = ROOT / ".venv" / "bin" / "videotranslator"
    cmd = [str(cli), "serve", "--config", str(CONFIG), "--port", str(PORT)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    ready_s = printed_s = None
    try:
        while time.perf_counter() - started < 180:
            try:
                if httpx.get(f"http://127.0.0.1:{PORT}/readyz", timeout=2).status_code == 200:
                    ready_s = time.perf_counter() - started
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        dashboard = httpx.get("http://127.0.0.1:8265/", timeout=5).status_code
        while time.perf_counter() - started < 240 and not any("Ctrl+C" in line for line in lines):
            time.sleep(0.1)
        printed_s = time.perf_counter() - started
    finally:
        stop = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        reader.join(timeout=5)
    urls = [line.strip() for line in lines if "http://" in line]
    return {"ready_s": round(ready_s or -1, 1), "urls_printed_s": round(printed_s or -1, 1),
            "dashboard_8265_status": dashboard, "printed": urls,
            "exit_code": proc.returncode, "shutdown_s": round(time.perf_counter() - stop, 1)}  # fmt: skip


# ----------------------------------------------------------------------------- overhead


def overhead(base: str, repeats: int, settings_args: dict[str, Any]) -> dict[str, Any]:
    """The same stage through Serve HTTP and called directly in this process, interleaved."""
    from serve_app.deployments import ASRDeployment, TranslatorDeployment, settings_from

    settings = settings_from(settings_args["settings"])
    asr, translator = ASRDeployment(settings), TranslatorDeployment(settings)
    audio = (DATA / "jfk.flac").read_bytes()
    texts = ["Good morning.", "The weather is cold today."]
    cases = {
        # same language: the translator answers without the model, so this is the bare Serve + HTTP cost
        "translate_no_model": (
            lambda c: c.post("/v1/translate", json={"texts": texts, "source_language": "en", "target_language": "en"}),
            lambda: translator.translate_texts(texts, "en", "en"),
        ),
        "translate_llm": (
            lambda c: c.post("/v1/translate", json={"texts": texts, "source_language": "en", "target_language": "ru"}),
            lambda: translator.translate_texts(texts, "en", "ru"),
        ),
        "transcribe_jfk_11s": (
            lambda c: c.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", audio)}, data={"language": "en"}),
            lambda: asr.transcribe(audio, "en"),
        ),
    }
    results: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=300) as client:
        for name, (via_http, direct) in cases.items():
            n = repeats if name == "translate_no_model" else max(5, repeats // 4)
            via_http(client), direct()  # warm both
            http_ms, direct_ms = [], []
            for _ in range(n):
                t = time.perf_counter()
                assert via_http(client).status_code == 200
                http_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                direct()
                direct_ms.append((time.perf_counter() - t) * 1000)
            h, d = summary(http_ms), summary(direct_ms)
            results[name] = {"n": n, "serve_http": h, "direct": d, "added_p50_ms": round(h["p50_ms"] - d["p50_ms"], 2)}
    return results


# ----------------------------------------------------------------------------- upload


def _pids(pattern: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if re.search(pattern, cmd):
                found.append(int(entry.name))
    return found


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_wav(path: Path, size_bytes: int) -> Path:
    """A valid WAV of ``size_bytes`` (silence, 48 kHz stereo 16-bit), written sparse so it is instant."""
    import struct

    data = size_bytes - 44
    header = (
        b"RIFF" + struct.pack("<I", data + 36) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 2, 48000, 192000, 4, 16)
    )
    header += b"data" + struct.pack("<I", data)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(size_bytes)
    return path


def upload(base: str, tmp: Path, gigabytes: float) -> dict[str, Any]:
    """curl -F file=@big.wav to POST /files/upload; peak RSS of the ingress replica and the HTTP proxy."""
    watched = {"ingress": _pids(r"ServeReplica:videotranslator:Ingress"), "proxy": _pids(r"ProxyActor")}
    return _upload_watch(base, tmp, gigabytes, watched)


def _upload_watch(base: str, tmp: Path, gigabytes: float, watched: dict[str, list[int]]) -> dict[str, Any]:
    big = make_wav(tmp / "big.wav", int(gigabytes * 1024**3))
    before = {k: sum(_rss_mb(p) for p in v) for k, v in watched.items()}
    peak = dict(before)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for k, v in watched.items():
                peak[k] = max(peak[k], sum(_rss_mb(p) for p in v))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t = time.perf_counter()
    out = subprocess.run(["curl", "-s", "-S", "-F", f"file=@{big};type=audio/wav", f"{base}/files/upload"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    seconds = time.perf_counter() - t
    done.set()
    sampler.join()
    body = json.loads(out.stdout)
    size = big.stat().st_size
    big.unlink()
    return {
        "bytes": size,
        "status": body["status"],
        "seconds": round(seconds, 2),
        "MB_per_s": round(size / 1e6 / seconds, 1),
        "rss_growth_mb": {k: round(peak[k] - before[k], 1) for k in peak},
        "pids": watched,
    }


def upload_without_serve(tmp: Path, gigabytes: float) -> dict[str, Any]:
    """The same upload to the same FastAPI app under plain uvicorn (no Serve proxy hop), for comparison."""
    port = 8132
    root = tmp / "uvicorn"
    env = {**os.environ, "VT_STORAGE__ROOT": str(root), "VT_STORAGE__CACHE_DIR": str(root / "cache"),
           "VT_SERVICE__JOB_STORE_URL": f"sqlite:///{root / 'jobs.db'}"}  # fmt: skip
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serve_app.api.main:get_application", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        result = _upload_watch(f"http://127.0.0.1:{port}", tmp, gigabytes, {"uvicorn": [proc.pid]})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return result


# ----------------------------------------------------------------------------- job throughput


def _jobs_round(base: str, videos: list[Path], concurrent: bool) -> dict[str, Any]:
    timeline: dict[str, list[tuple[float, str]]] = {}
    with httpx.Client(base_url=base, timeout=600) as client:
        file_ids = []
        for v in videos:
            with open(v, "rb") as fh:
                file_ids.append(client.post("/files/upload", files={"file": (v.name, fh)}).json()["data"]["file_id"])
        t0 = time.perf_counter()
        pending: list[str] = []
        for fid in file_ids:
            pending.append(
                client.post("/jobs", json={"file_id": fid, "target_languages": ["ru"]}).json()["data"]["job_id"]
            )
            while not concurrent and pending:
                pending = _poll(client, pending, timeline, t0)
        while pending:
            pending = _poll(client, pending, timeline, t0)
        wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 1), "overlap": _overlaps(timeline, wall)}


def _poll(
    client: httpx.Client, pending: list[str], timeline: dict[str, list[tuple[float, str]]], t0: float
) -> list[str]:
    time.sleep(0.25)
    left = []
    for job_id in pending:
        job = client.get(f"/jobs/{job_id}").json()["data"]
        label = job["stage"] if job["state"] == "running" else job["state"]
        events = timeline.setdefault(job_id, [])
        if not events or events[-1][1] != label:
            events.append((time.perf_counter() - t0, label))
        if job["state"] in ("queued", "running"):
            left.append(job_id)
        else:
            assert job["state"] == "succeeded", job
    return left


def _overlaps(timeline: dict[str, list[tuple[float, str]]], wall: float) -> dict[str, float]:
    """Seconds during which two jobs were in DIFFERENT model stages at once (the deployments overlapping)."""
    models = {"asr", "translate", "tts"}
    step, overlap, same = 0.25, 0.0, 0.0
    t = 0.0
    while t < wall:
        stages = []
        for events in timeline.values():
            current = [label for at, label in events if at <= t]
            if current and current[-1] in models:
                stages.append(current[-1])
        if len(set(stages)) >= 2:
            overlap += step
        if len(stages) > len(set(stages)):
            same += step
        t += step
    return {"different_model_stages_at_once_s": overlap, "same_stage_two_jobs_s": same}


def jobs(n: int, tmp: Path, start: Any) -> dict[str, Any]:
    videos = []
    for i in range(2 * n):  # distinct content per job, so no job gets another's stage cache
        from tests.conftest import make_video

        videos.append(make_video(tmp / f"job{i}.mp4", DATA / "jfk.flac", 12.0 + 0.2 * i, size="320x240"))
    results = {}
    for phase, concurrent, batch in (("one_after_another", False, videos[:n]), ("all_at_once", True, videos[n:])):
        base = start(tmp / f"jobs-{phase}")  # a fresh store and caches per phase (TTS clips are cached by text)
        results[phase] = _jobs_round(base, batch, concurrent)
    results["speedup"] = round(results["one_after_another"]["wall_s"] / results["all_at_once"]["wall_s"], 2)
    return results


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="cold,overhead,upload,upload_uvicorn,jobs")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--upload-gb", type=float, default=2.0)
    parser.add_argument("--jobs", type=int, default=4)
    opts = parser.parse_args()
    parts = set(opts.only.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="vt-bench-serve-"))
    report: dict[str, Any] = {"cpus": os.cpu_count()}
    if "upload_uvicorn" in parts:
        report["upload_without_serve"] = upload_without_serve(tmp, opts.upload_gb)
        print(json.dumps({"upload_without_serve": report["upload_without_serve"]}), flush=True)
    if "cold" in parts:
        report["cold_start"] = cold_start(tmp)
        print(json.dumps({"cold_start": report["cold_start"]}), flush=True)
    if parts & {"overhead", "upload", "jobs"}:
        import ray
        from ray import serve

        from serve_app.app import build_app, deep_merge
        from serve_app.server import load_profile, start_app

        info = start_app(CONFIG, port=PORT, app_args=storage_args(tmp / "var"))
        base = info.ui_url.rstrip("/")
        try:
            if "overhead" in parts:
                report["overhead"] = overhead(base, opts.repeats, storage_args(tmp / "var"))
                print(json.dumps({"overhead": report["overhead"]}), flush=True)
            if "upload" in parts:
                report["upload"] = upload(base, tmp, opts.upload_gb)
                print(json.dumps({"upload": report["upload"]}), flush=True)
            if "jobs" in parts:
                profile = load_profile(CONFIG)["applications"][0]

                def restart(root: Path) -> str:
                    serve.delete("videotranslator")
                    serve.run(
                        build_app(deep_merge(profile["args"], storage_args(root))),
                        name="videotranslator",
                        route_prefix="/",
                    )
                    return base

                report["jobs"] = jobs(opts.jobs, tmp, restart)
                print(json.dumps({"jobs": report["jobs"]}), flush=True)
        finally:
            serve.shutdown()
            ray.shutdown()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
