"""Resumable uploads through Ray Serve (issue 17): memory and throughput of chunked uploads.

    .venv/bin/python bench/upload.py [--gib 2] [--chunk-mib 4] [--parallel 10] [--parallel-mb 200] [--no-baseline]

Starts the real Serve app on the CPU profile (configs/serve.cpu.yaml, storage under a temp folder), then:

1. ``chunked``: one ``--gib`` GiB file (a sparse WAV in /tmp, so ffprobe accepts it) sent as a resumable
   upload, ``--chunk-mib`` MiB per PUT, its sha256 declared and checked by the server at the end;
2. ``parallel``: ``--parallel`` clients at once, each a ``--parallel-mb`` MB resumable upload;
3. ``baseline`` (last, since the memory it takes is not given back): the same big file through the one-request
   ``POST /files/upload`` (multipart), the path whose RSS grew by hundreds of MB.

For each part: throughput, errors, and the peak RSS growth over the part of the Serve HTTP proxy
(``ProxyActor``) and of the ingress replica (``ServeReplica:videotranslator:Ingress``), sampled every 50 ms.
Uploaded files are removed after each part and the source file at the end. Prints one JSON object per part.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import httpx

from bench.serve import CONFIG, _pids, make_wav, storage_args


def free_port(preferred: int) -> int:
    """``preferred`` when it is free (other people's Serve apps may hold 8000), else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is a parent, grandparent... of ``pid`` (only this run's Ray, not another's)."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
    return False


def our_pids(pattern: str) -> list[int]:
    return [p for p in _pids(pattern) if descends_from(p, os.getpid())]


FIELDS = ("VmRSS", "RssAnon", "RssShmem")  # all resident / private heap / shared memory (Ray's object store)


def mem_mb(pid: int) -> dict[str, float]:
    """The process's resident memory in MB, by kind (``FIELDS``); zeros when it is gone."""
    out = dict.fromkeys(FIELDS, 0.0)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = line.split(":", 1)[0]
            if name in out:
                out[name] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


class RSSWatch:
    """Peak resident memory (MB, per kind in ``FIELDS``) of groups of processes, sampled every ``interval_s`` in a
    thread while in the block."""

    def __init__(self, watched: dict[str, list[int]], interval_s: float = 0.05) -> None:
        self.watched, self.interval_s = watched, interval_s
        self.before = {k: self._now(v) for k, v in watched.items()}
        self.peak = {k: dict(v) for k, v in self.before.items()}
        self.timeline: list[dict[str, Any]] = []  # growth once a second: does it level off?
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _now(pids: list[int]) -> dict[str, float]:
        per = [mem_mb(p) for p in pids]
        return {f: sum(m[f] for m in per) for f in FIELDS}

    def _sample(self) -> None:
        started = last = time.monotonic()
        while not self._done.is_set():
            nows = {k: self._now(v) for k, v in self.watched.items()}
            for k, now in nows.items():
                self.peak[k] = {f: max(self.peak[k][f], now[f]) for f in FIELDS}
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                self.timeline.append({"t_s": round(last - started, 1)} | {
                    k: {f: round(now[f] - self.before[k][f], 1) for f in ("RssAnon", "RssShmem")} for k, now in nows.items()
                })  # fmt: skip
            time.sleep(self.interval_s)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def growth_mb(self) -> dict[str, dict[str, float]]:
        return {k: {f: round(self.peak[k][f] - self.before[k][f], 1) for f in FIELDS} for k in self.peak}


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def chunked_upload(base: str, path: Path, chunk_bytes: int, *, sha256: str | None = None) -> dict[str, Any]:
    """One resumable upload of ``path``: POST /files/uploads, then a PUT per chunk. Returns the final data."""
    size = path.stat().st_size
    with httpx.Client(base_url=base, timeout=600) as http, open(path, "rb") as fh:
        created = http.post("/files/uploads", json={"filename": path.name, "size": size, "sha256": sha256})
        created.raise_for_status()
        upload_id = created.json()["data"]["upload_id"]
        offset, chunks = 0, 0
        while True:
            end = min(offset + chunk_bytes, size)
            body = os.pread(fh.fileno(), end - offset, offset)
            r = http.put(f"/files/uploads/{upload_id}", content=body,
                         headers={"Content-Range": f"bytes {offset}-{end - 1}/{size}"})  # fmt: skip
            r.raise_for_status()
            data: dict[str, Any] = r.json()["data"]
            chunks += 1
            if data["complete"]:
                data["chunks"] = chunks
                return data
            offset = data["offset"]


def measure(watched: dict[str, list[int]], nbytes: int, work: Callable[[], Any]) -> dict[str, Any]:
    with RSSWatch(watched) as watch:
        t = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - t
    return {
        "bytes": nbytes,
        "seconds": round(seconds, 2),
        "MB_per_s": round(nbytes / 1e6 / seconds, 1),
        "rss_growth_mb": watch.growth_mb(),
        "result": result,
        "timeline": watch.timeline,
    }


def part_chunked(base: str, watched: dict[str, list[int]], big: Path, chunk_bytes: int) -> dict[str, Any]:
    digest = file_sha256(big)  # before the clock starts: the client's own cost is not the server's

    def work() -> dict[str, Any]:
        data = chunked_upload(base, big, chunk_bytes, sha256=digest)
        return {
            "complete": data["complete"],
            "chunks": data["chunks"],
            "size": data["file"]["size"],
            "sha256_checked": True,
        }

    return measure(watched, big.stat().st_size, work)


def part_parallel(
    base: str, watched: dict[str, list[int]], tmp: Path, n: int, mb: int, chunk_bytes: int
) -> dict[str, Any]:
    sources = [make_wav(tmp / f"p{i}.wav", mb * 1000 * 1000 + i) for i in range(n)]
    errors: list[str] = []
    done: list[int] = []

    def one(path: Path) -> None:
        try:
            data = chunked_upload(base, path, chunk_bytes)
            assert data["complete"] and data["file"]["size"] == path.stat().st_size, data
            done.append(data["file"]["size"])
        except Exception as exc:  # noqa: BLE001 (counted: the target is no error at all)
            errors.append(f"{type(exc).__name__}: {exc}")

    def work() -> dict[str, Any]:
        threads = [threading.Thread(target=one, args=(p,)) for p in sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"uploads": n, "completed": len(done), "errors": errors}

    try:
        return measure(watched, sum(p.stat().st_size for p in sources), work)
    finally:
        for p in sources:
            p.unlink(missing_ok=True)


def part_baseline(base: str, watched: dict[str, list[int]], big: Path) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        out = subprocess.run(["curl", "-s", "-S", "-F", f"file=@{big};type=audio/wav", f"{base}/files/upload"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return {"status": json.loads(out.stdout)["status"]}

    return measure(watched, big.stat().st_size, work)


def clear_uploads(root: Path) -> None:
    shutil.rmtree(root / "uploads", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--chunk-mib", type=float, default=4.0)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--parallel-mb", type=int, default=200)
    parser.add_argument("--no-baseline", action="store_true")
    opts = parser.parse_args()
    chunk_bytes = int(opts.chunk_mib * 1024**2)
    tmp = Path(tempfile.mkdtemp(prefix="vt-bench-upload-", dir="/tmp"))
    root = tmp / "var"
    args = storage_args(root)
    args["settings"]["upload"] = {"chunk_max_bytes": chunk_bytes}
    args["settings"]["MAX_FILE_SIZE"] = int(opts.gib * 1024**3) + 1024**2
    report: dict[str, Any] = {"cpus": os.cpu_count(), "chunk_bytes": chunk_bytes}
    big = make_wav(tmp / "big.wav", int(opts.gib * 1024**3))  # sparse: no disk until uploaded
    import ray
    from ray import serve

    from serve_app.server import start_app

    try:
        info = start_app(CONFIG, port=free_port(8017), dashboard_port=free_port(8277), app_args=args)
        base = info.ui_url.rstrip("/")
        watched = {"ingress": our_pids(r"ServeReplica:videotranslator:Ingress"), "proxy": our_pids(r"ProxyActor")}
        if not all(watched.values()):
            raise SystemExit(f"could not find the Serve processes: {watched}")
        report["pids"] = watched
        report["chunked"] = part_chunked(base, watched, big, chunk_bytes)
        print(json.dumps({"chunked": report["chunked"]}), flush=True)
        clear_uploads(root)
        if opts.parallel:
            report["parallel"] = part_parallel(base, watched, tmp, opts.parallel, opts.parallel_mb, chunk_bytes)
            print(json.dumps({"parallel": report["parallel"]}), flush=True)
            clear_uploads(root)
        if not opts.no_baseline:
            report["baseline_multipart"] = part_baseline(base, watched, big)
            print(json.dumps({"baseline_multipart": report["baseline_multipart"]}), flush=True)
            clear_uploads(root)
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
