"""Fixtures of the Ray Data batch tests: a moto S3 server on loopback, the session's Ray cluster, test media.

Ray workers inherit the environment of the process that started Ray, so the S3 settings (``AWS_*``,
pointing at a port reserved here) are set when this conftest is loaded, before any test starts the
session's one Ray cluster (``ray_cluster`` in tests/conftest.py); the moto server itself starts on that
port with the first test that needs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings
from pipelines.batch import storage_uri as uris
from tests.conftest import make_video

DATA = Path(__file__).resolve().parents[2] / "data"
_SAVED: dict[str, str | None] = {}
_S3_PORT: list[int] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A moto S3 server on 127.0.0.1 (a child process); returns it and its endpoint URL."""
    port = port or free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"moto_server did not start on port {port}")


def s3_env(url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }  # fmt: skip


def make_bucket(url: str, name: str) -> None:
    req = urllib.request.Request(f"{url}/{name}", method="PUT")
    urllib.request.urlopen(req, timeout=5).close()


def pytest_configure(config: pytest.Config) -> None:
    """Point S3 at a port reserved for the session's moto server, before anything starts Ray."""
    _S3_PORT.append(free_port())
    env = s3_env(f"http://127.0.0.1:{_S3_PORT[0]}")
    _SAVED.update({k: os.environ.get(k) for k in env})
    os.environ.update(env)


def pytest_unconfigure(config: pytest.Config) -> None:
    for k, v in _SAVED.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """The session's moto S3 server (where ``AWS_ENDPOINT_URL`` points) with a bucket ``media``; its URL."""
    proc, url = start_moto(_S3_PORT[0])
    assert os.environ["AWS_ENDPOINT_URL"] == url
    make_bucket(url, "media")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3(moto_s3: str, request: pytest.FixtureRequest) -> str:
    """A fresh ``s3://media/<test>`` prefix on the session's moto server."""
    return f"s3://media/{request.node.name}"


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


def read_manifest(out: Path | str) -> dict[str, dict[str, Any]]:
    """``OUTDIR/manifest.jsonl`` by input stem."""
    lines = uris.read_text(uris.join(str(out), "manifest.jsonl")).splitlines()
    return {Path(uris.basename(e["input"])).stem: e for e in map(json.loads, lines)}


def read_summary(out: Path | str) -> dict[str, Any]:
    return dict(json.loads(uris.read_text(uris.join(str(out), "summary.json"))))


def write_jsonl(path: Path, *items: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path
