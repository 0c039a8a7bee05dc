"""Access control and hardening: API keys (HTTP and bridge), private jobs, rate limits, the start-up rule,
uploads under generated ids, ffmpeg's protocol whitelist, security headers, CORS and CSRF, and logs that hold
no keys and no file contents. See docs/RELIABILITY.md ("Access control")."""

from __future__ import annotations

import asyncio
import errno
import http.server
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest

from pipelines import media as media_mod
from pipelines.errors import InvalidMedia, MediaError
from serve_app.auth import KeyRing, TokenBuckets, is_loopback, owner_of, require_keys
from serve_app.errors import InsecureStartup
from tests.reliability import corpus
from tests.reliability.conftest import make_services, make_settings, make_worker, wait_job

KEY_A, KEY_B = "sk-alice-0123456789abcdef", "sk-bob-fedcba9876543210"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}


def envelope(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error" and body["error"]["code"] == code and body["message"]
    return body


def make_client(tmp_path: Path, fakes: dict[str, Any], *, worker: bool = False, **service: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    services = make_services(make_settings(tmp_path / "var", **service), fakes)
    job_worker = make_worker(services, fakes) if worker else None
    if job_worker is not None:
        job_worker.start()
    try:
        with TestClient(
            get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
        ) as c:
            c.services = services  # type: ignore[attr-defined]
            yield c
    finally:
        if job_worker is not None:
            job_worker.stop(timeout=30)
        services.jobs.store.close()


@pytest.fixture
def keyed(tmp_path: Path, fakes: dict[str, Any]) -> Iterator[Any]:
    """The API with two keys, and a job worker."""
    yield from make_client(tmp_path, fakes, worker=True, api_keys=[KEY_A, KEY_B])


def upload_job(client: Any, path: Path, headers: dict[str, str], **fields: str) -> Any:
    with open(path, "rb") as fh:
        return client.post("/jobs/upload", files={"file": (path.name, fh)}, data={"target_languages": "ru", **fields},
                           headers=headers)  # fmt: skip


# --------------------------------------------------------------------------- API keys


def test_keys_are_required_for_the_api_and_v1_but_not_for_the_page_docs_and_health(keyed: Any) -> None:
    for method, path in (("GET", "/jobs"), ("GET", "/v1/models"), ("POST", "/v1/translate"), ("POST", "/files/upload"),
                         ("GET", f"/jobs/{'0' * 32}"), ("GET", "/config")):  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": f"Basic {KEY_A}"}):
            r = keyed.request(method, path, headers=headers)
            body = envelope(r, 401, "unauthorized")
            assert "API key" in body["message"] and r.headers["www-authenticate"].startswith("Bearer")
    for path in ("/healthz", "/readyz", "/", "/openapi.json", "/docs", "/static/app.js"):
        assert keyed.get(path).status_code == 200, path
    assert keyed.get("/jobs", headers=A).status_code == 200
    assert keyed.get("/v1/models", headers=B).json()["object"] == "list"
    r = keyed.post("/v1/translate", json={"texts": ["hi"], "source_language": "en", "target_language": "ru"}, headers=A)
    assert r.status_code == 200 and r.json()["translations"] == ["[ru] hi"]


@pytest.mark.slow
def test_jobs_are_visible_only_to_the_key_that_created_them(keyed: Any, media: dict[str, Path]) -> None:
    r = upload_job(keyed, media["good"], A, mode="subtitles")
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["job_id"]
    job = wait_job(_Authed(keyed, A), job_id)
    assert job["state"] == "succeeded"
    srt = next(n for n in job["outputs"] if n.endswith(".ru.srt"))
    # Bob sees nothing of Alice's job: every path answers exactly like a job that does not exist.
    for method, path in (("GET", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}/events"), ("DELETE", f"/jobs/{job_id}"),
                         ("GET", f"/jobs/{job_id}/outputs/{srt}"), ("GET", f"/jobs/{job_id}/versions"),
                         ("PATCH", f"/jobs/{job_id}/segments")):  # fmt: skip
        body = envelope(keyed.request(method, path, headers=B), 404, "job_not_found")
        assert body["message"] == f"no job with id {job_id}"
    assert keyed.get("/jobs", headers=B).json()["data"]["jobs"] == []
    assert [j["job_id"] for j in keyed.get("/jobs", headers=A).json()["data"]["jobs"]] == [job_id]
    assert keyed.get(f"/jobs/{job_id}/outputs/{srt}", headers=A).status_code == 200
    # the owner on record is a hash of the key; the key itself is nowhere in the job store
    record = keyed.services.jobs.store.get(job_id)
    assert record.owner == owner_of(KEY_A) != KEY_A
    db = Path(keyed.services.settings.service.job_store_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
    assert all(KEY_A.encode() not in p.read_bytes() for p in db.parent.glob("jobs.db*"))


def test_uploads_are_visible_and_usable_only_by_the_key_that_made_them(keyed: Any, media: dict[str, Path]) -> None:
    with open(media["good"], "rb") as fh:
        r = keyed.post("/files/upload", files={"file": ("mine.mp4", fh)}, headers=A)
    assert r.status_code == 201, r.text
    file_id = r.json()["data"]["file_id"]
    assert keyed.get(f"/files/{file_id}", headers=A).status_code == 200
    # Bob can neither see Alice's upload nor start a job on it: both answer like a file that does not exist.
    envelope(keyed.get(f"/files/{file_id}", headers=B), 404, "file_not_found")
    body = {"file_id": file_id, "target_languages": ["ru"], "mode": "subtitles"}
    envelope(keyed.post("/jobs", json=body, headers=B), 404, "file_not_found")
    assert keyed.get("/jobs", headers=B).json()["data"]["jobs"] == []
    assert keyed.post("/jobs", json=body, headers=A).status_code == 202
    assert keyed.services.storage.get_file(file_id).owner == owner_of(KEY_A)


class _Authed:
    """A client that adds one key's header (for helpers that poll)."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers)


def test_key_ring_compares_digests_and_owners_are_hashes() -> None:
    ring = KeyRing([KEY_A, " ", ""])
    assert ring.enabled and ring.owner(KEY_A) == owner_of(KEY_A) and ring.owner(KEY_B) is None
    assert ring.owner(None) is None and not KeyRing([]).enabled
    assert re.fullmatch(r"key:[0-9a-f]{32}", owner_of(KEY_A)) and KEY_A not in owner_of(KEY_A)


# --------------------------------------------------------------------------- start-up rule


@pytest.mark.parametrize(
    ("host", "keys", "ok"),
    [("127.0.0.1", [], True), ("::1", [], True), ("localhost", [], True), ("127.0.0.2", [], True),
     ("0.0.0.0", [], False), ("::", [], False), ("192.168.1.10", [], False), ("example.org", [], False),
     ("0.0.0.0", ["k"], True)],
)  # fmt: skip
def test_only_loopback_may_run_without_keys(host: str, keys: list[str], ok: bool) -> None:
    assert is_loopback(host) is (host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"))
    if ok:
        require_keys(host, keys)
    else:
        with pytest.raises(InsecureStartup, match="without API keys: set VT_API_KEYS"):
            require_keys(host, keys)


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--host", "0.0.0.0", "--port", "8999"],
        ["bridge", "--amqp-url", "amqp://guest:pw@rabbit.example:5672/"],
    ],
)
def test_serve_and_bridge_refuse_to_start_open_without_keys(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One clear line, before Ray or the broker is touched (and no password of the AMQP URL in it)."""
    from typer.testing import CliRunner

    from videotranslator.cli import app

    monkeypatch.delenv("VT_API_KEYS", raising=False)
    monkeypatch.delenv("VT_SERVICE__API_KEYS", raising=False)
    result = CliRunner().invoke(app, argv)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: refusing to start") and "VT_API_KEYS" in lines[0] and "pw" not in lines[0]


def test_keys_from_the_environment_unlock_a_public_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    from configs.settings import Settings
    from serve_app.server import check_bind

    monkeypatch.setenv("VT_API_KEYS", f"{KEY_A},{KEY_B}")
    assert Settings(_env_file=None).service.api_keys == [KEY_A, KEY_B]  # type: ignore[call-arg]
    check_bind("0.0.0.0")
    monkeypatch.setenv("VT_API_KEYS", json.dumps([KEY_A]))
    assert Settings(_env_file=None).service.api_keys == [KEY_A]  # type: ignore[call-arg]
    assert KEY_A not in repr(Settings(_env_file=None))  # type: ignore[call-arg]


# --------------------------------------------------------------------------- bridge


@pytest.fixture
def rpc(services: Any) -> Any:
    from serve_app.bridge.methods import MethodContext, build_methods
    from serve_app.bridge.rpc import RpcHandler

    class BridgeModels:
        def transcribe(self, media_path: Path, language: str | None) -> Any:
            raise AssertionError("not used")

        def translate_texts(self, texts: list[str], source_language: str, target_language: str) -> list[str]:
            return [t.upper() for t in texts]

    root = Path(services.settings.storage.root)
    (root / "inputs").mkdir(parents=True, exist_ok=True)  # the bridge's shared input folder (queue.input_dir)
    (root / "inputs" / "clip.mp4").write_bytes(b"x")
    ctx = MethodContext(service=services.jobs, models=BridgeModels(), storage_root=root)
    handler = RpcHandler(build_methods(ctx), api_keys=[KEY_A, KEY_B])

    def call(method: str, params: dict[str, Any], *, key: str = "amqp:1", owner: str | None = None) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
        return asyncio.run(handler.handle(body, key=key, owner=owner))

    return call


def test_bridge_needs_a_key_in_params_and_keeps_jobs_private(rpc: Any, services: Any) -> None:
    wrong = "sk-wrong-4444"
    for params in (
        {"texts": ["hi"], "target_language": "ru"},
        {"texts": ["hi"], "target_language": "ru", "api_key": wrong},
    ):
        outcome = rpc("translate_text", params)
        error = outcome.reply["error"]
        assert error["code"] == -32018 and error["data"]["error"]["code"] == "unauthorized"
        assert "api_key" in error["message"] and outcome.poison is not None  # dead-lettered, never retried
        assert wrong not in json.dumps(outcome.reply) and wrong not in (outcome.poison or "")
    ok = rpc("translate_text", {"texts": ["hi"], "target_language": "ru", "api_key": KEY_A})
    assert ok.reply["result"]["translations"] == ["HI"]
    created = rpc("translate_video", {"input": "inputs/clip.mp4", "target_languages": ["es"], "api_key": KEY_A},
                  owner="key:forged-by-a-header")  # fmt: skip
    job_id = created.reply["result"]["job_id"]
    assert services.jobs.store.get(job_id).owner == owner_of(KEY_A)  # the header cannot choose the owner
    assert rpc("get_job", {"job_id": job_id, "api_key": KEY_A}).reply["result"]["job_id"] == job_id
    for method in ("get_job", "cancel_job"):
        other = rpc(method, {"job_id": job_id, "api_key": KEY_B}, key="amqp:2")
        assert other.reply["error"]["data"]["error"]["code"] == "job_not_found"
    assert services.jobs.store.get(job_id).state.value == "queued"  # Bob's cancel did nothing
    # Alice's message id under Bob's key: message ids are per key, so Bob gets a job of his own (issue 12, item 12:
    # he can neither learn that Alice used the id nor take it from her), and Alice's replay still finds hers.
    replay = rpc("translate_video", {"input": "inputs/clip.mp4", "target_languages": ["es"], "api_key": KEY_B})
    bobs = replay.reply["result"]["job_id"]
    assert bobs != job_id and services.jobs.store.get(bobs).owner == owner_of(KEY_B)
    again = rpc("translate_video", {"input": "inputs/clip.mp4", "target_languages": ["es"], "api_key": KEY_A})
    assert again.reply["result"]["job_id"] == job_id


# --------------------------------------------------------------------------- rate limits


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(2.0, 3, clock=lambda: now[0], max_identities=2)
    assert [buckets.take("a") for _ in range(4)] == [0, 0, 0, 1]
    now[0] += 0.5  # one token back
    assert buckets.take("a") == 0 and buckets.take("a") == 1
    assert buckets.take("b") == 0 and buckets.take("c") == 0 and len(buckets._buckets) == 2  # bounded
    assert not TokenBuckets(0, 5).enabled and TokenBuckets(0, 5).take("x") == 0


def test_rate_limit_per_ip_answers_429_with_retry_after(tmp_path: Path, fakes: dict[str, Any]) -> None:
    for client in make_client(tmp_path, fakes, rate_limit_ip_per_s=0.5, rate_limit_burst=3):
        statuses = [client.get("/v1/models").status_code for _ in range(3)]
        r = client.get("/jobs")
        body = envelope(r, 429, "rate_limited")
        assert statuses == [200, 200, 200] and int(r.headers["retry-after"]) >= 1 and "this address" in body["message"]
        assert all(client.get("/healthz").status_code == 200 for _ in range(10))  # probes are never limited


def test_rate_limit_per_key_is_separate_for_each_key(tmp_path: Path, fakes: dict[str, Any]) -> None:
    for client in make_client(tmp_path, fakes, api_keys=[KEY_A, KEY_B], rate_limit_key_per_s=0.5, rate_limit_burst=2):
        assert [client.get("/jobs", headers=A).status_code for _ in range(3)] == [200, 200, 429]
        assert "this API key" in client.get("/jobs", headers=A).json()["message"]
        assert client.get("/jobs", headers=B).status_code == 200


# --------------------------------------------------------------------------- uploads and ffmpeg


def test_uploads_are_stored_under_generated_ids(client: Any, settings: Any, media: dict[str, Path]) -> None:
    with open(media["good"], "rb") as fh:
        r = client.post("/files/upload", files={"file": ("../../../../tmp/evil name.mp4", fh)})
    data = r.json()["data"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["file_id"]) and data["filename"] == "evil name.mp4"
    stored = sorted(
        str(p.relative_to(settings.storage.root)) for p in Path(settings.storage.root, "uploads").rglob("*")
    )
    fid = data["file_id"]
    assert stored == [f"uploads/{fid}", f"uploads/{fid}/{fid}.mp4", f"uploads/{fid}/meta.json"]


class _Hits(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Hits.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"\x47" * 188)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    """A local HTTP server that records every request (none may arrive)."""
    _Hits.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/segment.ts"
    finally:
        server.shutdown()
        server.server_close()


class FifoWatch:
    """A FIFO named like a media segment: if anything opens it for reading, ``opened`` becomes True (the
    watcher then opens the writing end, so the reader gets EOF instead of hanging)."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path, self.opened = path, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO  # no reader: good
                continue
            self.opened = True
            os.close(fd)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_playlists_pointing_at_urls_are_refused_and_fetch_nothing(tmp_path: Path, web_server: str) -> None:
    """probe refuses playlists before ffprobe opens them; and even run straight through ffmpeg (no probe),
    the protocol whitelist keeps it off the network."""
    hls, concat = corpus.hls_url(tmp_path, web_server), corpus.concat_url(tmp_path, web_server)
    for playlist in (hls, concat):
        with pytest.raises(InvalidMedia, match="playlist"):
            media_mod.probe(playlist)
    for args in (["-i", str(hls)], ["-f", "concat", "-safe", "0", "-i", str(concat)], ["-f", "hls", "-i", str(hls)]):
        with pytest.raises(MediaError) as info:
            media_mod.run_ffmpeg([*args, "-f", "null", "-"], what="playlist test")
        assert "not on whitelist" in (info.value.detail or "") or "Invalid data" in (info.value.detail or "")
    assert _Hits.hits == []


def test_playlists_pointing_at_local_files_read_nothing(client: Any, settings: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret.ts"
    with FifoWatch(secret) as watch:
        for make in (corpus.hls_local_file, corpus.concat_local_file):
            playlist = make(tmp_path, str(secret))
            with pytest.raises(InvalidMedia, match="playlist"):
                media_mod.probe(playlist)
            with open(playlist, "rb") as fh:
                r = client.post("/files/upload", files={"file": ("video.mp4", fh)})
            envelope(r, 415, "invalid_media")
        for target in ("/etc/passwd", "file:///etc/passwd"):
            with open(corpus.hls_local_file(tmp_path, target), "rb") as fh:
                envelope(client.post("/files/upload", files={"file": ("v.mp4", fh)}), 415, "invalid_media")
    assert not watch.opened
    assert not list(Path(settings.storage.root, "uploads").rglob("*"))  # nothing stored


def test_every_ffmpeg_input_gets_the_protocol_whitelist() -> None:
    args = media_mod._whitelisted(["-f", "lavfi", "-i", "anullsrc", "-i", "a.wav", "-map", "0", "out.wav"])
    assert args == ["-f", "lavfi", "-protocol_whitelist", "file,pipe", "-i", "anullsrc",
                    "-protocol_whitelist", "file,pipe", "-i", "a.wav", "-map", "0", "out.wav"]  # fmt: skip
    # and nothing else in the code base runs ffmpeg or ffprobe by itself (mux.py, mix.py, routes: run_ffmpeg)
    root = Path(__file__).resolve().parents[2]
    direct = re.compile(r"""(which|_binary)\(\s*["']ff(mpeg|probe)["']|\[\s*["']ff(mpeg|probe)["']""")
    offenders = [str(p.relative_to(root)) for d in ("pipelines", "serve_app", "videotranslator")
                 for p in (root / d).rglob("*.py") if direct.search(p.read_text(encoding="utf-8"))]  # fmt: skip
    assert offenders == ["pipelines/media.py"]


# --------------------------------------------------------------------------- headers, CORS, CSRF

HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}


def assert_security_headers(r: Any) -> None:
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (r.url, name)
    assert r.headers.get("referrer-policy") and "frame-ancestors 'none'" in r.headers["content-security-policy"]


@pytest.mark.slow
def test_security_headers_on_every_kind_of_response(client: Any, media: dict[str, Path]) -> None:
    from serve_app.api.routes.web import PAGE_HEADERS

    with open(media["good"], "rb") as fh:
        job = client.post(
            "/jobs/upload", files={"file": ("a.mp4", fh)}, data={"target_languages": "ru", "mode": "subtitles"}
        )
    data = wait_job(client, job.json()["data"]["job_id"])
    responses = [client.get("/healthz"), client.get("/jobs"), client.get("/nope"), client.post("/jobs", json={}),
                 client.get("/static/app.js"), client.get("/openapi.json"), client.get("/docs"), job,
                 client.get(next(iter(data["output_urls"].values()))), client.get(f"/jobs/{data['job_id']}/events")]  # fmt: skip
    for r in responses:
        assert_security_headers(r)
    assert "default-src 'none'" in client.get("/jobs").headers["content-security-policy"]
    assert "cdn.jsdelivr.net" in client.get("/docs").headers["content-security-policy"]  # the docs page still works
    page = client.get("/")
    assert page.headers.get_list("content-security-policy") == [PAGE_HEADERS["Content-Security-Policy"]]  # kept
    assert_security_headers(page)


def test_cors_is_off_by_default_and_on_only_for_listed_origins(
    client: Any, tmp_path: Path, fakes: dict[str, Any]
) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    r = client.options("/jobs", headers=preflight)
    assert "access-control-allow-origin" not in r.headers and r.status_code >= 400
    assert "access-control-allow-origin" not in client.get("/jobs", headers={"Origin": "https://evil.example"}).headers
    for allowed in make_client(tmp_path, fakes, cors_origins=["https://app.example"]):
        ok = allowed.options("/jobs", headers={**preflight, "Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in allowed.options("/jobs", headers=preflight).headers


def test_csrf_on_the_web_form(client: Any, media: dict[str, Path]) -> None:
    client.get("/")  # the browser now holds the csrftoken cookie
    with open(media["good"], "rb") as fh:
        envelope(
            client.post("/jobs/upload", files={"file": ("a.mp4", fh)}, data={"target_languages": "ru"}),
            403,
            "csrf_failed",
        )
    envelope(
        client.post("/jobs", json={}, headers={"Origin": "https://evil.example", "Cookie": ""}), 403, "csrf_failed"
    )


# --------------------------------------------------------------------------- logs


@pytest.mark.slow
def test_logs_hold_no_keys_and_no_file_contents(
    tmp_path: Path, fakes: dict[str, Any], media: dict[str, Path], rpc: Any
) -> None:
    from configs.logging import setup_logging

    marker = "FILE-CONTENT-MARKER-7f3a9c"
    tagged = tmp_path / "tagged.mp4"  # a real video whose bytes (its title tag) carry the marker
    corpus._ffmpeg("-i", str(media["good"]), "-c", "copy", "-metadata", f"title={marker}", str(tagged))
    text = tmp_path / "notes.mp4"
    text.write_text(f"{marker}\n" * 100, encoding="utf-8")
    log_dir = tmp_path / "log"
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    setup_logging(log_dir, "DEBUG", console=False)
    try:
        for client in make_client(tmp_path, fakes, worker=True, api_keys=[KEY_A, KEY_B]):
            r = upload_job(client, tagged, A, mode="subtitles")
            assert wait_job(_Authed(client, A), r.json()["data"]["job_id"])["state"] == "succeeded"
            with open(text, "rb") as fh:
                assert client.post("/files/upload", files={"file": ("notes.mp4", fh)}, headers=B).status_code == 415
            assert client.get("/jobs", headers={"Authorization": "Bearer sk-not-a-key-5555"}).status_code == 401
            client.post(
                "/v1/translate", json={"texts": [marker], "source_language": "en", "target_language": "ru"}, headers=A
            )
        rpc("translate_text", {"texts": ["x"], "target_language": "ru", "api_key": "sk-bridge-wrong-6666"})
        rpc("translate_text", {"texts": ["x"], "target_language": "ru", "api_key": KEY_B})
    finally:
        for handler in [h for h in root.handlers if h not in saved[1]]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(saved[0])
    logs = "".join(p.read_text(encoding="utf-8") for p in log_dir.glob("*.log*"))
    assert "POST /jobs/upload 202" in logs and "GET /jobs 401" in logs  # the logs did record the requests
    for secret in (KEY_A, KEY_B, "sk-not-a-key-5555", "sk-bridge-wrong-6666", marker):
        assert secret not in logs, secret


def test_job_id_in_path_is_the_one_job_path_rule() -> None:
    """The guard (ownership) and the access log read the job id from a path with the same rule."""
    from serve_app.api.security import job_id_in_path

    job_id = "0123456789abcdef" * 2
    assert job_id_in_path(f"/jobs/{job_id}") == job_id
    assert job_id_in_path(f"/jobs/{job_id}/outputs/a.srt") == job_id
    for path in ("/jobs", "/jobs/", f"/jobs/{job_id}x", f"/jobs/{job_id.upper()}", f"/v1/jobs/{job_id}", "/jobs/abc"):
        assert job_id_in_path(path) is None, path


def test_bridge_jobs_take_only_the_callers_own_uploads(rpc: Any, services: Any, media: dict[str, Path]) -> None:
    async def chunks() -> Any:
        yield media["good"].read_bytes()

    info = asyncio.run(services.storage.save_upload(
        chunks(), filename="alice.mp4", content_type="video/mp4", max_bytes=1 << 30, owner=owner_of(KEY_A)))  # fmt: skip
    params = {"input": info.file_id, "target_languages": ["es"], "mode": "subtitles"}
    before = len(services.jobs.store.list())
    other = rpc("translate_video", {**params, "api_key": KEY_B}, key="amqp:bob")
    assert other.reply["error"]["data"]["error"]["code"] == "file_not_found" and other.poison is None
    assert len(services.jobs.store.list()) == before  # no job for Bob
    mine = rpc("translate_video", {**params, "api_key": KEY_A}, key="amqp:alice")
    assert services.jobs.store.get(mine.reply["result"]["job_id"]).owner == owner_of(KEY_A)
