"""Resumable uploads through the real Serve app (proxy → ingress replica), on the CPU profile: chunks, the offset
headers, the 409 and 413 answers and the finished file, as a client sees them through Ray Serve's HTTP proxy.
``bench/upload.py`` measures the memory of the same path with 2 GiB."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve_app import test_serve_http
from tests.serve_app.test_serve_http import assert_envelope

pytestmark = [pytest.mark.ray, pytest.mark.slow]
base_url, http = test_serve_http.base_url, test_serve_http.http  # the Serve app fixtures, over this module's args

CHUNK = 128 * 1024


@pytest.fixture(scope="module")
def app_args(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("serve-uploads") / "var"
    return {
        "settings": {
            "MAX_FILE_SIZE": 4_000_000,
            "upload": {"chunk_max_bytes": CHUNK},
            "storage": {"root": str(root), "cache_dir": str(root / "cache")},
            "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}"},
        }
    }


def test_a_resumable_upload_through_serve(http: httpx.Client, jfk_flac: Path) -> None:
    data = jfk_flac.read_bytes()
    assert len(data) > 3 * CHUNK
    assert_envelope(http.post("/files/uploads", json={"filename": "big.mp4", "size": 4_000_001}), 413)
    r = http.post("/files/uploads", json={"filename": jfk_flac.name, "size": len(data),
                                         "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
    assert r.status_code == 201, r.text
    url = r.headers["location"]

    def put(start: int, end: int) -> httpx.Response:
        rng = f"bytes {start}-{end - 1}/{len(data)}"
        return http.put(url, content=data[start:end], headers={"Content-Range": rng})

    assert put(0, CHUNK).status_code == 200
    body = assert_envelope(put(0, CHUNK), 409)  # the same chunk again
    assert body["error"]["code"] == "upload_offset_mismatch" and body["error"]["detail"] == {"offset": CHUNK}
    assert_envelope(put(CHUNK, 2 * CHUNK + 1), 413)  # over the chunk limit: refused before reading
    head = http.head(url)
    assert head.status_code == 200 and head.headers["upload-offset"] == str(CHUNK)
    offset = CHUNK
    while offset < len(data):
        r = put(offset, min(offset + CHUNK, len(data)))
        assert r.status_code == 200, r.text
        offset = r.json()["data"]["offset"]
    done = r.json()["data"]
    assert done["complete"] and done["file"]["size"] == len(data)
    assert http.get(f"/files/{done['file']['file_id']}").json()["data"]["filename"] == jfk_flac.name
