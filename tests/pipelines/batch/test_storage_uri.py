"""The storage root as a URI: local paths and s3:// against a moto server on loopback."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pipelines.batch import storage_uri as uris
from pipelines.fileio import file_mode


def test_local_paths(tmp_path: Path) -> None:
    (tmp_path / "b.mp4").write_bytes(b"video")
    (tmp_path / "a.WAV").write_bytes(b"audio")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert uris.list_media(str(tmp_path)) == [str(tmp_path / "a.WAV"), str(tmp_path / "b.mp4")]
    assert not uris.is_remote(str(tmp_path)) and uris.is_remote("s3://bucket/x")
    uri = uris.join(str(tmp_path), "out", "r.json")
    uris.write_text(uri, "{}")
    assert uris.read_text(uri) == "{}" and uris.exists(uri)
    assert uris.download(str(tmp_path / "b.mp4"), tmp_path / "dl") == tmp_path / "b.mp4"  # no copy
    uris.upload(tmp_path / "b.mp4", uris.join(str(tmp_path), "out", "b.mp4"))
    assert (tmp_path / "out" / "b.mp4").stat().st_mode & 0o777 == file_mode()  # the umask's, not mkstemp's 0600
    assert uris.sha256(str(tmp_path / "out" / "b.mp4")) == hashlib.sha256(b"video").hexdigest()
    uris.delete(uri)
    assert not uris.exists(uri)
    with pytest.raises(uris.StorageError):
        uris.read_text(str(tmp_path / "missing.json"))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left


def test_s3_round_trip(s3: str, tmp_path: Path) -> None:
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"\x00fake-video" * 1000)
    uris.upload(src, uris.join(s3, "in", "clip.mp4"))
    uris.upload(src, uris.join(s3, "in", "other.mkv"))
    uris.write_text(uris.join(s3, "in", "list.txt"), "not media")
    assert uris.list_media(uris.join(s3, "in")) == [f"{s3}/in/clip.mp4", f"{s3}/in/other.mkv"]
    local = uris.download(f"{s3}/in/clip.mp4", tmp_path / "dl")
    assert local == tmp_path / "dl" / "clip.mp4" and local.read_bytes() == src.read_bytes()
    assert uris.sha256(f"{s3}/in/clip.mp4") == hashlib.sha256(src.read_bytes()).hexdigest()
    uris.write_text(f"{s3}/out/manifest.jsonl", '{"a": 1}\n')
    assert uris.read_text(f"{s3}/out/manifest.jsonl") == '{"a": 1}\n'
    assert uris.exists(f"{s3}/out/manifest.jsonl") and not uris.exists(f"{s3}/out/nothing")
    uris.delete(f"{s3}/out/manifest.jsonl")
    assert not uris.exists(f"{s3}/out/manifest.jsonl")
    with pytest.raises(uris.StorageError):
        uris.download(f"{s3}/in/missing.mp4", tmp_path)
