"""The storage root as a URI: local paths and s3:// against a moto server on loopback."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import storage_uri as store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """A moto S3 server on 127.0.0.1 (a child process); returns it and its endpoint URL."""
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def s3_env(url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }  # fmt: skip


def make_bucket(url: str, name: str) -> None:
    req = urllib.request.Request(f"{url}/{name}", method="PUT")
    urllib.request.urlopen(req, timeout=5).close()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    proc, url = start_moto()
    for k, v in s3_env(url).items():
        monkeypatch.setenv(k, v)
    make_bucket(url, "media")
    try:
        yield "s3://media/batch"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_local_paths(tmp_path: Path) -> None:
    (tmp_path / "b.mp4").write_bytes(b"video")
    (tmp_path / "a.WAV").write_bytes(b"audio")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert store.list_media(str(tmp_path)) == [str(tmp_path / "a.WAV"), str(tmp_path / "b.mp4")]
    assert not store.is_remote(str(tmp_path)) and store.is_remote("s3://bucket/x")
    uri = store.join(str(tmp_path), "out", "r.json")
    store.write_text(uri, "{}")
    assert store.read_text(uri) == "{}" and store.exists(uri)
    assert store.download(str(tmp_path / "b.mp4"), tmp_path / "dl") == tmp_path / "b.mp4"  # no copy
    store.upload(tmp_path / "b.mp4", store.join(str(tmp_path), "out", "b.mp4"))
    assert store.sha256(str(tmp_path / "out" / "b.mp4")) == hashlib.sha256(b"video").hexdigest()
    store.delete(uri)
    assert not store.exists(uri)
    with pytest.raises(store.StorageError):
        store.read_text(str(tmp_path / "missing.json"))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left


def test_s3_round_trip(s3: str, tmp_path: Path) -> None:
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00fake-video" * 1000)
    store.upload(src, store.join(s3, "in", "clip.mp4"))
    store.upload(src, store.join(s3, "in", "other.mkv"))
    store.write_text(store.join(s3, "in", "list.txt"), "not media")
    assert store.list_media(store.join(s3, "in")) == [f"{s3}/in/clip.mp4", f"{s3}/in/other.mkv"]
    local = store.download(f"{s3}/in/clip.mp4", tmp_path / "dl")
    assert local == tmp_path / "dl" / "clip.mp4" and local.read_bytes() == src.read_bytes()
    assert store.sha256(f"{s3}/in/clip.mp4") == hashlib.sha256(src.read_bytes()).hexdigest()
    store.write_text(f"{s3}/out/manifest.jsonl", '{"a": 1}\n')
    assert store.read_text(f"{s3}/out/manifest.jsonl") == '{"a": 1}\n'
    assert store.exists(f"{s3}/out/manifest.jsonl") and not store.exists(f"{s3}/out/nothing")
    store.delete(f"{s3}/out/manifest.jsonl")
    assert not store.exists(f"{s3}/out/manifest.jsonl")
    with pytest.raises(store.StorageError):
        store.download(f"{s3}/in/missing.mp4", tmp_path)
