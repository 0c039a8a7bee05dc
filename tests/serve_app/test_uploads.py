"""Resumable uploads over HTTP (``serve_app/api/routes/uploads.py``, ``serve_app/jobs/resumable.py``): chunks
with Content-Range, the offset after a dropped connection, the limits, expiry, restarts and ownership.

The files are real WAVs of random samples (ffprobe checks them), a few hundred KiB, sent in 64 KiB chunks;
the dropped connection is a real socket closed half-way through a chunk, against uvicorn."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve_app.api.services import Services
from serve_app.jobs.resumable import DATA_NAME, session_count
from serve_app.jobs.retention import sweep
from serve_app.jobs.wiring import build_upload_sessions
from tests.serve_app.conftest import Server, make_services, make_settings
from tests.serve_app.test_api import assert_envelope

CHUNK = 64 * 1024
KEY_A, KEY_B = "sk-upload-a-0123456789", "sk-upload-b-0123456789"


def make_wav(n_bytes: int, seed: int = 0) -> bytes:
    """A valid 16 kHz mono 16-bit WAV of ``n_bytes`` whose samples are (seeded) random bytes."""
    data = n_bytes - 44
    header = (
        b"RIFF" + struct.pack("<I", data + 36) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    )
    import random

    return header + b"data" + struct.pack("<I", data) + random.Random(seed).randbytes(data)


WAV = make_wav(5 * CHUNK + 1234)
WAV_SHA = hashlib.sha256(WAV).hexdigest()


def _client(tmp_path: Path, fakes: dict[str, Any], **overrides: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    settings = make_settings(tmp_path / "var", **{"upload": {"chunk_max_bytes": CHUNK}, **overrides})
    services = make_services(settings, fakes)
    try:
        with TestClient(
            get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
        ) as c:
            c.services = services  # type: ignore[attr-defined]
            yield c
    finally:
        services.jobs.store.close()


@pytest.fixture
def up(tmp_path: Path, fakes: dict[str, Any]) -> Iterator[Any]:
    yield from _client(tmp_path, fakes)


def create(client: Any, data: bytes = WAV, *, sha256: str | None = WAV_SHA, **headers: str) -> dict[str, Any]:
    r = client.post("/files/uploads", json={"filename": "talk.wav", "size": len(data), "content_type": "audio/wav",
                                            "sha256": sha256}, headers=headers)  # fmt: skip
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()["data"]
    assert r.headers["location"] == f"/files/uploads/{body['upload_id']}" and body["offset"] == 0
    return body


def put(client: Any, upload_id: str, data: bytes, start: int, end: int, **headers: str) -> Any:
    """PUT ``data[start:end]`` (end exclusive)."""
    rng = f"bytes {start}-{end - 1}/{len(data)}"
    return client.put(f"/files/uploads/{upload_id}", content=data[start:end], headers={"Content-Range": rng, **headers})


def send_all(client: Any, upload_id: str, data: bytes = WAV, start: int = 0, **headers: str) -> list[Any]:
    answers = []
    for i in range(start, len(data), CHUNK):
        answers.append(put(client, upload_id, data, i, min(i + CHUNK, len(data)), **headers))
        assert answers[-1].status_code == 200, answers[-1].text
    return answers


def stored_bytes(services: Services, file_id: str) -> bytes:
    return services.storage.get_file(file_id).path.read_bytes()


# ----------------------------------------------------------------------------- the happy path and its contract


def test_chunks_make_a_file_that_post_jobs_takes(up: Any) -> None:
    upload_id = create(up)["upload_id"]
    answers = []
    for i in range(0, len(WAV), CHUNK):
        assert up.get(f"/files/{upload_id}").status_code == 404  # never visible before the last chunk
        answers.append(put(up, upload_id, WAV, i, min(i + CHUNK, len(WAV))))
    assert len(answers) == 6
    for i, r in enumerate(answers[:-1]):
        assert r.json()["data"]["offset"] == (i + 1) * CHUNK == int(r.headers["upload-offset"])
        assert r.json()["data"]["complete"] is False
    done = answers[-1].json()["data"]
    assert done["complete"] is True and done["offset"] == len(WAV) and done["expires_at"] is None
    assert set(done["file"]) == {"file_id", "filename", "content_type", "size", "upload_time"}
    assert done["file"]["file_id"] == upload_id and done["file"]["size"] == len(WAV)
    assert hashlib.sha256(stored_bytes(up.services, upload_id)).hexdigest() == WAV_SHA
    assert session_count(up.services.storage) == 0  # the session is gone, the file stays
    assert up.get(f"/files/{upload_id}").json()["data"]["filename"] == "talk.wav"
    again = up.get(f"/files/uploads/{upload_id}")  # a client that lost the last answer asks again
    assert again.status_code == 200 and again.json()["data"]["complete"] is True
    r = up.post("/jobs", json={"file_id": upload_id, "target_languages": ["ru"], "mode": "subtitles"})
    assert r.status_code == 202, r.text
    assert r.json()["data"]["state"] == "queued"


def test_small_upload_keeps_its_contract(up: Any) -> None:
    r = up.post("/files/upload", files={"file": ("small.wav", WAV, "audio/wav")})
    assert r.status_code == 201 and r.json()["status"] == "success" and r.json()["message"]
    assert set(r.json()["data"]) >= {"filename", "content_type", "size", "upload_time"}
    assert r.json()["data"]["size"] == len(WAV)


def test_head_and_get_tell_the_offset(up: Any) -> None:
    upload_id = create(up)["upload_id"]
    put(up, upload_id, WAV, 0, CHUNK)
    head = up.head(f"/files/uploads/{upload_id}")
    assert head.status_code == 200 and head.headers["upload-offset"] == str(CHUNK) and not head.content
    assert head.headers["upload-length"] == str(len(WAV))
    got = up.get(f"/files/uploads/{upload_id}").json()["data"]
    assert got["offset"] == CHUNK and got["chunk_max_bytes"] == CHUNK and got["expires_at"]


def test_wrong_offset_is_409_with_the_current_offset(up: Any) -> None:
    upload_id = create(up)["upload_id"]
    put(up, upload_id, WAV, 0, CHUNK)
    for start in (0, 2 * CHUNK):  # a chunk sent twice, and one that skips ahead
        r = put(up, upload_id, WAV, start, start + CHUNK)
        body = assert_envelope(r, 409, "upload_offset_mismatch")
        assert body["error"]["detail"] == {"offset": CHUNK} and r.headers["upload-offset"] == str(CHUNK)
    assert up.get(f"/files/uploads/{upload_id}").json()["data"]["offset"] == CHUNK  # nothing was written


def test_oversize_chunk_is_413_before_reading(up: Any) -> None:
    upload_id = create(up)["upload_id"]
    assert_envelope(put(up, upload_id, WAV, 0, CHUNK + 1), 413, "request_too_large")
    assert up.get(f"/files/uploads/{upload_id}").json()["data"]["offset"] == 0


def test_bad_ranges_and_missing_length(up: Any) -> None:
    upload_id = create(up)["upload_id"]
    url = f"/files/uploads/{upload_id}"
    assert_envelope(up.put(url, content=WAV[:10]), 400, "bad_request")  # no Content-Range
    assert_envelope(up.put(url, content=WAV[:10], headers={"Content-Range": "bytes 0-20/99"}), 400)  # 21 != 10
    r = up.put(url, content=WAV[:10], headers={"Content-Range": f"bytes 0-9/{len(WAV) + 1}"})
    assert_envelope(r, 400, "bad_request")  # not the declared total
    assert_envelope(up.put("/files/uploads/" + "0" * 32, content=b"x", headers={"Content-Range": "bytes 0-0/1"}), 404)

    def no_length() -> Iterator[bytes]:
        yield WAV[:10]

    r = up.put(url, content=no_length(), headers={"Content-Range": "bytes 0-9/" + str(len(WAV))})
    assert_envelope(r, 411, "length_required")


def test_total_over_max_file_size_is_refused_at_creation(tmp_path: Path, fakes: dict[str, Any]) -> None:
    for c in _client(tmp_path, fakes, MAX_FILE_SIZE=len(WAV) - 1):
        r = c.post("/files/uploads", json={"filename": "big.wav", "size": len(WAV)})
        assert_envelope(r, 413, "file_too_large")
        assert session_count(c.services.storage) == 0


def test_checksum_and_content_are_verified_at_the_end(up: Any) -> None:
    wrong = create(up, sha256="0" * 64)["upload_id"]
    answers = [put(up, wrong, WAV, i, min(i + CHUNK, len(WAV))) for i in range(0, len(WAV), CHUNK)]
    assert_envelope(answers[-1], 422, "checksum_mismatch")
    assert up.get(f"/files/{wrong}").status_code == 404 and session_count(up.services.storage) == 0
    junk = os.urandom(3 * CHUNK)
    bad = create(up, junk, sha256=None)["upload_id"]
    answers = [put(up, bad, junk, i, i + CHUNK) for i in range(0, len(junk), CHUNK)]
    assert_envelope(answers[-1], 415, "invalid_media")
    assert "talk.wav" in answers[-1].json()["message"] and DATA_NAME not in answers[-1].text
    assert up.get(f"/files/{bad}").status_code == 404 and session_count(up.services.storage) == 0
    assert_envelope(up.post("/files/uploads", json={"filename": "a", "size": 5, "sha256": "xyz"}), 400, "bad_request")


def test_cancel_removes_the_session(up: Any) -> None:
    upload_id = create(up)["upload_id"]
    put(up, upload_id, WAV, 0, CHUNK)
    r = up.delete(f"/files/uploads/{upload_id}")
    assert r.status_code == 200 and r.json()["data"]["offset"] == CHUNK
    assert session_count(up.services.storage) == 0
    assert_envelope(up.get(f"/files/uploads/{upload_id}"), 404, "upload_not_found")
    assert_envelope(put(up, upload_id, WAV, CHUNK, 2 * CHUNK), 404, "upload_not_found")


def test_a_second_writer_is_409_busy(up: Any) -> None:
    upload_id = create(up)["upload_id"]
    data = up.services.storage.sessions_dir / upload_id / DATA_NAME
    with open(data, "ab") as fh:  # another request (or replica) is writing this session
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        r = put(up, upload_id, WAV, 0, CHUNK)
    body = assert_envelope(r, 409, "upload_busy")
    assert body["error"]["detail"] == {"offset": 0}
    assert put(up, upload_id, WAV, 0, CHUNK).status_code == 200  # the lock is gone with the writer


def test_csrf_applies_to_chunks_and_cancel(up: Any) -> None:
    token = up.get("/").cookies["csrftoken"]
    up.cookies.set("csrftoken", token)
    assert_envelope(up.post("/files/uploads", json={"filename": "a.wav", "size": 10}), 403, "csrf_failed")
    upload_id = create(up, **{"X-CSRF-Token": token})["upload_id"]
    assert_envelope(put(up, upload_id, WAV, 0, CHUNK), 403, "csrf_failed")
    assert_envelope(up.delete(f"/files/uploads/{upload_id}"), 403, "csrf_failed")
    assert put(up, upload_id, WAV, 0, CHUNK, **{"X-CSRF-Token": token}).status_code == 200


# ----------------------------------------------------------------------------- limits, expiry, restarts, owners


def test_sessions_count_against_the_quota(tmp_path: Path, fakes: dict[str, Any]) -> None:
    for c in _client(tmp_path, fakes, storage={"quota_bytes": len(WAV) * 2 + 200_000}):
        first = create(c)["upload_id"]
        second = create(c)["upload_id"]
        r = c.post("/files/uploads", json={"filename": "third.wav", "size": len(WAV)})
        assert_envelope(r, 507, "insufficient_storage")  # reserved in full from creation, before any byte
        r = c.post("/files/upload", files={"file": ("small.wav", WAV, "audio/wav")})
        assert_envelope(r, 507, "insufficient_storage")  # the streaming path counts the sessions too
        assert c.delete(f"/files/uploads/{second}").status_code == 200
        send_all(c, first)
        assert c.get(f"/files/{first}").status_code == 200
        create(c)  # the cancelled session's room is free again


def test_idle_sessions_expire_and_are_swept(tmp_path: Path, fakes: dict[str, Any]) -> None:
    ttl = 3600.0
    for c in _client(tmp_path, fakes, upload={"chunk_max_bytes": CHUNK, "session_ttl_s": ttl}):
        services: Services = c.services
        old, fresh = create(c)["upload_id"], create(c)["upload_id"]
        put(c, old, WAV, 0, CHUNK)
        folder = services.storage.sessions_dir / old
        past = time.time() - 2 * ttl
        for path in (folder, *folder.iterdir()):
            os.utime(path, (past, past))
        assert_envelope(c.get(f"/files/uploads/{old}"), 404, "upload_not_found")  # refused before the sweep
        sessions = build_upload_sessions(services.settings, services.storage)
        result = sweep(services.storage, services.jobs.store, ttl_s=None, sessions=sessions)
        assert result.upload_sessions == [old] and result.bytes_freed >= CHUNK
        assert not folder.exists() and c.get(f"/files/uploads/{fresh}").status_code == 200


def test_a_session_survives_a_restart(tmp_path: Path, fakes: dict[str, Any]) -> None:
    first = _client(tmp_path, fakes)
    c = next(first)
    upload_id = create(c)["upload_id"]
    for i in range(0, 3 * CHUNK, CHUNK):
        assert put(c, upload_id, WAV, i, i + CHUNK).status_code == 200
    first.close()  # the server goes away: store closed, app gone
    for c2 in _client(tmp_path, fakes):  # a new process on the same storage
        assert c2.head(f"/files/uploads/{upload_id}").headers["upload-offset"] == str(3 * CHUNK)
        send_all(c2, upload_id, start=3 * CHUNK)
        assert stored_bytes(c2.services, upload_id) == WAV


def test_another_keys_session_is_not_found(tmp_path: Path, fakes: dict[str, Any]) -> None:
    for c in _client(tmp_path, fakes, service={"api_keys": [KEY_A, KEY_B]}):
        a, b = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}
        assert_envelope(c.post("/files/uploads", json={"filename": "a.wav", "size": 10}), 401, "unauthorized")
        upload_id = create(c, **a)["upload_id"]
        url = f"/files/uploads/{upload_id}"
        assert_envelope(c.get(url, headers=b), 404, "upload_not_found")
        assert c.head(url, headers=b).status_code == 404
        assert_envelope(put(c, upload_id, WAV, 0, CHUNK, **b), 404, "upload_not_found")
        assert_envelope(c.delete(url, headers=b), 404, "upload_not_found")
        send_all(c, upload_id, **a)
        assert c.get(f"/files/{upload_id}", headers=b).status_code == 404  # the finished file is A's too
        assert c.get(f"/files/{upload_id}", headers=a).status_code == 200


# ----------------------------------------------------------------------------- real sockets (uvicorn)


@pytest.fixture
def live(tmp_path: Path, fakes: dict[str, Any]) -> Iterator[tuple[Server, Services]]:
    from serve_app.api.main import get_application

    services = make_services(make_settings(tmp_path / "var", upload={"chunk_max_bytes": CHUNK}), fakes)
    try:
        with Server(get_application(services=services)) as server:
            yield server, services
    finally:
        services.jobs.store.close()


def test_a_dropped_connection_resumes_from_the_servers_offset(live: tuple[Server, Services]) -> None:
    import httpx

    server, services = live
    with httpx.Client(base_url=server.url) as http:
        upload_id = create(http)["upload_id"]
        assert put(http, upload_id, WAV, 0, CHUNK).status_code == 200
        sent = CHUNK + 20_000  # the second chunk is cut after 20 000 of its bytes
        head = (f"PUT /files/uploads/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {CHUNK}\r\n"
                f"Content-Range: bytes {CHUNK}-{2 * CHUNK - 1}/{len(WAV)}\r\n\r\n").encode()  # fmt: skip
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + WAV[CHUNK:sent])
            time.sleep(0.3)
        deadline = time.monotonic() + 10  # the server notices the hang-up and keeps what arrived
        while int(http.head(f"/files/uploads/{upload_id}").headers["upload-offset"]) != sent:
            assert time.monotonic() < deadline, "the bytes before the hang-up were not kept"
            time.sleep(0.05)
        i = sent
        while i < len(WAV):
            r = put(http, upload_id, WAV, i, min(i + CHUNK, len(WAV)))
            if r.status_code == 409 and r.json()["error"]["code"] == "upload_busy":  # its lock, a moment longer
                time.sleep(0.05)
                continue
            assert r.status_code == 200, r.text
            i = r.json()["data"]["offset"]
        assert r.json()["data"]["complete"] is True
    assert hashlib.sha256(stored_bytes(services, upload_id)).hexdigest() == WAV_SHA


def test_concurrent_sessions(live: tuple[Server, Services]) -> None:
    import httpx

    server, services = live
    files = [make_wav(3 * CHUNK + 7 * n, seed=n) for n in range(6)]
    ids: list[str | None] = [None] * len(files)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            with httpx.Client(base_url=server.url) as http:
                upload_id = create(http, files[n], sha256=hashlib.sha256(files[n]).hexdigest())["upload_id"]
                send_all(http, upload_id, files[n])
                ids[n] = upload_id
        except BaseException as exc:  # noqa: BLE001 (reported below, in the test thread)
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for n, upload_id in enumerate(ids):
        assert upload_id is not None and stored_bytes(services, upload_id) == files[n]
    assert session_count(services.storage) == 0
