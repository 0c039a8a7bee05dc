"""The FastAPI ingress in-process (no Ray): get_application with the real deployment classes over fake
stages, the real job store and storage. Every error body is the envelope."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pysubs2

from serve_app.api.csrf import COOKIE_NAME
from serve_app.api.services import Services
from serve_app.jobs import JobState

pytestmark = []


def assert_envelope(response: Any, status_code: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert body["status"] == "error" and isinstance(body["message"], str) and body["message"]
    assert set(body["error"]) >= {"code", "detail"}
    assert "Traceback" not in response.text
    if code is not None:
        assert body["error"]["code"] == code
    return body


def upload(client: Any, path: Path, url: str = "/files/upload", **fields: str) -> Any:
    with open(path, "rb") as fh:
        return client.post(url, files={"file": (path.name, fh, "video/mp4")}, data=fields)


# ----------------------------------------------------------------------------- page, health, docs


def test_page_sets_csrf_cookie_and_embeds_token(client: Any) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    token = r.cookies[COOKIE_NAME]
    assert len(token) >= 32
    assert f'<meta name="csrf-token" content="{token}">' in r.text
    assert f'name="csrf_token" value="{token}"' in r.text
    assert "<script>" not in r.text and "script-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200


def test_health_ready_models_docs(client: Any) -> None:
    assert client.get("/healthz").json()["status"] == "success"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and all(ready.json()["data"]["components"].values())
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and "whisper-1" in {m["id"] for m in models["data"]}
    assert client.get("/openapi.json").json()["paths"]["/jobs"]
    assert client.get("/docs").status_code == 200


# ----------------------------------------------------------------------------- CSRF


def test_browser_post_without_token_is_refused(client: Any, tiny_video: Path, settings: Any) -> None:
    client.get("/")  # the browser now holds the cookie
    body = assert_envelope(upload(client, tiny_video), 403, "csrf_failed")
    assert "csrf" in body["message"].lower()
    r = client.post("/jobs", json={"file_id": "0" * 32, "target_languages": ["ru"]})
    assert_envelope(r, 403, "csrf_failed")
    wrong = client.post(
        "/jobs", json={"file_id": "0" * 32, "target_languages": ["ru"]}, headers={"X-CSRF-Token": "x" * 40}
    )
    assert_envelope(wrong, 403, "csrf_failed")
    assert not list((Path(settings.storage.root) / "uploads").glob("*/meta.json"))


def test_browser_post_with_header_or_field_passes(client: Any, tiny_video: Path) -> None:
    token = client.get("/").cookies[COOKIE_NAME]
    with open(tiny_video, "rb") as fh:
        r = client.post("/files/upload", files={"file": ("a.mp4", fh)}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    # the hidden form field works too, when it comes before the file (as the page's form sends it)
    with open(tiny_video, "rb") as fh:
        r = client.post("/files/upload", files=[("csrf_token", (None, token)), ("file", ("a.mp4", fh))])
    assert r.status_code == 201, r.text


def test_cross_site_post_without_cookie_is_refused_api_client_passes(client: Any, tiny_video: Path) -> None:
    r = client.post("/v1/translate", json={"texts": ["hi"], "source_language": "en", "target_language": "ru"},
                    headers={"Origin": "https://evil.example"})  # fmt: skip
    assert_envelope(r, 403, "csrf_failed")
    ok = client.post("/v1/translate", json={"texts": ["hi"], "source_language": "en", "target_language": "ru"})
    assert ok.status_code == 200


# ----------------------------------------------------------------------------- files


def test_upload_answers_file_info(client: Any, tiny_video: Path) -> None:
    r = upload(client, tiny_video)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "success"
    data = body["data"]
    assert set(data) == {"file_id", "filename", "content_type", "size", "upload_time"}
    assert data["filename"] == "clip.mp4" and data["size"] == tiny_video.stat().st_size


def test_oversize_upload_is_413_and_leaves_nothing(services: Services, tiny_video: Path, settings: Any) -> None:
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    services.settings = settings.model_copy(update={"MAX_FILE_SIZE": 100_000})
    with TestClient(
        get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
    ) as c:
        big = io.BytesIO(b"\0" * 1_000_000)
        assert_envelope(c.post("/files/upload", files={"file": ("big.mp4", big)}), 413, "file_too_large")
    uploads = Path(settings.storage.root) / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_upload_longer_than_max_duration_is_413(tmp_path: Path, fakes: dict[str, Any], tiny_video: Path) -> None:
    """MAX_DURATION reaches the upload path through the app's own wiring (build_job_service)."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application
    from tests.serve_app.conftest import make_services, make_settings

    settings = make_settings(tmp_path / "var", MAX_DURATION=2.0)  # the clip lasts 3 s
    services = make_services(settings, fakes)
    try:
        with TestClient(
            get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
        ) as c:
            body = assert_envelope(upload(c, tiny_video), 413, "media_too_long")
    finally:
        services.jobs.store.close()
    assert "'clip.mp4' lasts 0:00:03" in body["message"] and ".part" not in body["message"]
    assert not any((settings.storage.root / "uploads").iterdir())


def test_non_media_upload_is_415(client: Any, settings: Any) -> None:
    r = client.post("/files/upload", files={"file": ("notes.mp4", io.BytesIO(b"hello, not a video" * 100))})
    body = assert_envelope(r, 415, "invalid_media")
    assert str(settings.storage.root) not in r.text  # no server paths in the detail
    assert (
        body["error"]["detail"] is None or ".part" not in body["error"]["detail"] or "/" not in body["error"]["detail"]
    )


def test_upload_without_file_is_422(client: Any) -> None:
    assert_envelope(client.post("/files/upload", files={"other": (None, "x")}), 422, "invalid_request")
    assert_envelope(client.post("/files/upload", content=b"x", headers={"content-type": "text/plain"}), 422)


# ----------------------------------------------------------------------------- jobs


def test_job_lifecycle_without_worker(client: Any, tiny_video: Path, services: Services) -> None:
    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    r = client.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"], "mode": "subtitles"})
    assert r.status_code == 202, r.text
    job = r.json()["data"]
    assert job["state"] == "queued" and job["target_languages"] == ["ru"] and "input" not in job
    job_id = job["job_id"]
    assert client.get(f"/jobs/{job_id}").json()["data"]["job_id"] == job_id
    assert [j["job_id"] for j in client.get("/jobs").json()["data"]["jobs"]] == [job_id]
    cancelled = client.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["data"]["state"] == "cancelled"
    assert_envelope(client.delete(f"/jobs/{job_id}"), 409, "job_not_cancellable")


def test_job_errors(client: Any, tiny_video: Path) -> None:
    assert_envelope(client.get("/jobs/" + "a" * 32), 404, "job_not_found")
    assert_envelope(client.get("/jobs/nope/events"), 404, "job_not_found")
    assert_envelope(client.get("/jobs/" + "a" * 32 + "/outputs/x.mp4"), 404)
    bad_json = client.post("/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert_envelope(bad_json, 422, "invalid_json")
    assert_envelope(client.post("/jobs", json={"file_id": "a" * 32}), 422, "validation_error")
    assert_envelope(client.post("/jobs", json={"file_id": "a" * 32, "target_languages": ["ru"]}), 404, "file_not_found")
    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    assert_envelope(
        client.post("/jobs", json={"file_id": file_id, "target_languages": ["xx"]}), 422, "unknown_language"
    )
    assert_envelope(client.get("/nowhere"), 404, "not_found")
    assert_envelope(client.put("/jobs"), 405, "method_not_allowed")


def test_queue_cap_gives_429_with_retry_after(client: Any, tiny_video: Path, services: Services) -> None:
    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    for _ in range(services.jobs.max_queued_jobs):
        assert client.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"]}).status_code == 202
    r = client.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"]})
    assert_envelope(r, 429, "queue_full")
    assert r.headers["retry-after"] == "7"
    assert_envelope(upload(client, tiny_video, "/jobs/upload", target_languages="ru"), 429, "queue_full")


def test_jobs_upload_runs_through_worker_with_sse_and_ranges(
    client: Any, tiny_video: Path, services: Services, fakes: dict[str, Any]
) -> None:
    """POST /jobs/upload, a JobWorker running the real runner over the fake stages (through the deployment
    classes and the handle adapters' protocols), SSE to the end, outputs with Range support."""
    from pipelines.runner import Pipeline
    from serve_app.jobs import JobWorker

    r = upload(client, tiny_video, "/jobs/upload", target_languages="ru, es", mode="dub",
               glossary=json.dumps({"country": "страна"}))  # fmt: skip
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["job_id"]
    worker = JobWorker(
        services.jobs,
        lambda: Pipeline(services.settings, asr=fakes["asr"], translator=fakes["translator"], tts=fakes["tts"]),
        poll_s=0.05,
    )
    assert worker.run_once()
    with client.stream("GET", f"/jobs/{job_id}/events") as events:
        lines = [line for line in events.iter_lines() if line.startswith("data:")]
    last = json.loads(lines[-1][len("data:") :])
    assert last["state"] == "succeeded" and last["progress"] == 1.0
    job = client.get(f"/jobs/{job_id}").json()["data"]
    stem = "clip"  # outputs are named like the CLI names them, after the client's file name
    assert {f"{stem}.{n}" for n in ("ru.mp4", "ru.srt", "es.vtt", "en.srt", "report.json")} <= set(job["outputs"])
    srt = client.get(job["output_urls"][f"{stem}.ru.srt"])
    assert srt.status_code == 200 and pysubs2.SSAFile.from_string(srt.text).events[0].text.startswith("[ru]")
    assert 'filename="clip.ru.srt"' in srt.headers["content-disposition"]  # the client's name for downloads
    full = client.get(f"/jobs/{job_id}/outputs/{stem}.ru.mp4")
    part = client.get(f"/jobs/{job_id}/outputs/{stem}.ru.mp4", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(full.content)}"
    assert_envelope(client.get(f"/jobs/{job_id}/outputs/..%2Fjobs.db"), 404)
    assert JobState(job["state"]) is JobState.SUCCEEDED


def test_a_failed_job_names_no_server_path(
    client: Any, tiny_video: Path, services: Services, fakes: dict[str, Any], settings: Any
) -> None:
    """job.error comes from a stage's message (here the probe's "input file not found: <absolute path>")."""
    from pipelines.runner import Pipeline
    from serve_app.jobs import JobWorker

    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    r = client.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"]})
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["job_id"]
    services.storage.get_file(file_id).path.unlink()  # gone before the worker probes it
    worker = JobWorker(services.jobs, lambda: Pipeline(services.settings, asr=fakes["asr"], tts=fakes["tts"]))
    assert worker.run_once()
    job = client.get(f"/jobs/{job_id}").json()["data"]
    assert job["state"] == "failed" and job["error"]["code"] == "input_not_found"
    assert job["error"]["message"] == f"input file not found: {file_id}.mp4"
    assert str(settings.storage.root) in services.jobs.get(job_id).error["message"]  # kept for the operator


# ----------------------------------------------------------------------------- /v1


def test_transcriptions_all_formats(client: Any, jfk_flac: Path, fakes: dict[str, Any]) -> None:
    audio = jfk_flac.read_bytes()
    results = {}
    for fmt in ("json", "text", "srt", "vtt", "verbose_json"):
        r = client.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", audio)},
                        data={"model": "whisper-1", "response_format": fmt, "language": "en"})  # fmt: skip
        assert r.status_code == 200, r.text
        results[fmt] = r
    assert results["json"].json()["text"].startswith("And so my fellow")
    assert results["text"].text.strip() == results["json"].json()["text"]
    assert pysubs2.SSAFile.from_string(results["srt"].text).events
    assert results["vtt"].text.startswith("WEBVTT")
    verbose = results["verbose_json"].json()
    assert verbose["language"] == "english" and verbose["segments"] and verbose["words"]
    samples, language = fakes["asr"].calls[-1]
    assert language == "en" and samples.dtype.name == "float32" and 10 < len(samples) / 16000 < 12


def test_transcription_errors(client: Any, jfk_flac: Path) -> None:
    files = {"file": ("jfk.flac", jfk_flac.read_bytes())}
    assert_envelope(
        client.post("/v1/audio/transcriptions", files=files, data={"model": "gpt-9"}), 404, "model_not_found"
    )
    assert_envelope(client.post("/v1/audio/transcriptions", files=files, data={"response_format": "xml"}), 422)
    assert_envelope(client.post("/v1/audio/transcriptions", files={"file": ("x.wav", b"garbage" * 10)}), 415)


def test_v1_error_messages_name_no_server_path(client: Any, fakes: dict[str, Any]) -> None:
    from pipelines.errors import ModelError

    class MissingVoice:
        def __init__(self) -> None:
            raise ModelError("piper voice not found: /srv/vt/models/voices/ru_RU-irina-medium.onnx")

    fakes["tts"].synth_cls = MissingVoice
    body = assert_envelope(client.post("/v1/audio/speech", json={"input": "hi", "voice": "ru"}), 503, "model_error")
    assert body["message"] == body["error"]["message"] == "piper voice not found: ru_RU-irina-medium.onnx"


def test_speech_wav_and_mp3(client: Any, tmp_path: Path) -> None:
    for fmt, codec in (("wav", "pcm_s16le"), ("mp3", "mp3")):
        r = client.post("/v1/audio/speech", json={"input": "Привет, мир", "voice": "ru", "response_format": fmt})
        assert r.status_code == 200, r.text
        out = tmp_path / f"speech.{fmt}"
        out.write_bytes(r.content)
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(out)],
                               capture_output=True, check=True)  # fmt: skip
        assert json.loads(probe.stdout)["streams"][0]["codec_name"] == codec
    assert (
        client.post("/v1/audio/speech", json={"input": "hi", "voice": "alloy", "response_format": "wav"}).status_code
        == 200
    )
    assert_envelope(client.post("/v1/audio/speech", json={"input": "hi", "voice": "zz"}), 422, "unknown_language")
    assert_envelope(client.post("/v1/audio/speech", json={"input": "hi", "voice": "piper:/etc/passwd"}), 422)


def test_translate_keeps_order_and_enforces_limits(client: Any, services: Services) -> None:
    texts = ["one", "two", "three"]
    r = client.post("/v1/translate", json={"texts": texts, "source_language": "en", "target_language": "ru"})
    assert r.status_code == 200
    assert r.json()["translations"] == [f"[ru] {t}" for t in texts] == r.json()["data"]["translations"]
    limit = services.settings.service.max_text_items
    too_many = client.post(
        "/v1/translate", json={"texts": ["a"] * (limit + 1), "source_language": "en", "target_language": "ru"}
    )
    assert_envelope(too_many, 413, "request_too_large")
    too_long = client.post("/v1/translate", json={"texts": ["a" * (services.settings.service.max_text_chars + 1)],
                                                  "source_language": "en", "target_language": "ru"})  # fmt: skip
    assert_envelope(too_long, 413, "request_too_large")
    assert_envelope(client.post("/v1/translate", json={"texts": "nope"}), 422, "validation_error")


def test_unexpected_exception_is_500_envelope_without_traceback(client: Any, services: Services) -> None:
    class Broken:
        def translate_texts(self, *args: Any) -> list[str]:
            raise RuntimeError("secret internal detail")

    from serve_app.api.services import DeploymentClient

    services.translator = DeploymentClient(Broken())
    r = client.post("/v1/translate", json={"texts": ["a"], "source_language": "en", "target_language": "ru"})
    body = assert_envelope(r, 500, "internal_error")
    assert "secret" not in r.text and body["message"] == "internal server error"
