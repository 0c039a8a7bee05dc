"""The Serve app for real: Ray Serve on the session's Ray cluster, the CPU profile with the bundled
models, HTTP through the proxy port from the config (8000, or a free one when 8000 is busy)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pysubs2
import pytest

from serve_app.api.csrf import COOKIE_NAME
from tests.conftest import make_video
from tests.serve_app.conftest import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "serve.cpu.yaml"
APP = "videotranslator"
MAX_FILE_SIZE = 1_500_000


def ffprobe_bytes(data: bytes, folder: Path) -> dict[str, Any]:
    """The first stream of an audio file given as bytes."""
    path = folder / "probe.bin"
    path.write_bytes(data)
    return ffprobe(path)[0]


def assert_envelope(response: httpx.Response, status_code: int) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    body = response.json()
    assert body["status"] == "error" and body["message"] and {"code", "detail"} <= set(body["error"])
    assert "Traceback" not in response.text
    return body


def ffprobe(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, check=True)  # fmt: skip
    streams: list[dict[str, Any]] = json.loads(out.stdout)["streams"]
    return streams


@pytest.fixture(scope="module")
def app_args(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("serve") / "var"
    return {
        "settings": {
            "MAX_FILE_SIZE": MAX_FILE_SIZE,
            "storage": {"root": str(root), "cache_dir": str(root / "cache")},
            "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}", "max_running_jobs": 1},
        }
    }


@pytest.fixture(scope="module")
def base_url(ray_cluster: None, app_args: dict[str, Any]) -> Iterator[str]:
    from ray import serve

    from serve_app.server import start_app

    info = start_app(CONFIG, port=free_port(8000), app_args=app_args)
    try:
        yield info.ui_url.rstrip("/")
    finally:
        serve.shutdown()  # also stops the HTTP proxy, so the next app in this Ray cluster can bind its own port


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=180) as client:
        yield client


def upload(http: httpx.Client, path: Path) -> str:
    with open(path, "rb") as fh:
        r = http.post("/files/upload", files={"file": (path.name, fh, "video/mp4")})
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["file_id"])


def follow(http: httpx.Client, job_id: str, timeout_s: float = 240) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with http.stream("GET", f"/jobs/{job_id}/events", timeout=timeout_s) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[len("data:") :]))
    return events


def test_ready_page_and_csrf(http: httpx.Client, jfk_video: Path) -> None:
    ready = http.get("/readyz").json()
    assert ready["status"] == "success" and set(ready["data"]["components"]) == {
        "asr",
        "translator",
        "tts",
        "job_runner",
    }
    with httpx.Client(base_url=str(http.base_url)) as browser:  # its own cookie jar, like a browser
        page = browser.get("/")
        assert page.status_code == 200 and page.cookies.get(COOKIE_NAME)
        with open(jfk_video, "rb") as fh:
            refused = browser.post("/files/upload", files={"file": ("jfk.mp4", fh)})
        assert assert_envelope(refused, 403)["error"]["code"] == "csrf_failed"
    assert http.get("/openapi.json").status_code == 200 and http.get("/docs").status_code == 200


def test_job_to_russian_end_to_end(http: httpx.Client, jfk_video: Path, tmp_path: Path) -> None:
    file_id = upload(http, jfk_video)
    refused = http.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"], "voices": {"ru": "rhvoice:x"}})
    assert assert_envelope(refused, 422)["error"]["code"] == "invalid_voice"
    # The job's own voice travels through the job runner's TTS handle to the TTS replica (issue 14).
    r = http.post("/jobs", json={"file_id": file_id, "target_languages": ["ru"], "voices": {"ru": "rhvoice:anna"}})
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["job_id"]
    events = follow(http, job_id)
    assert events[-1]["state"] == "succeeded", events[-1]
    stages = [e["stage"] for e in events if e["stage"]]
    # the stream polls the store: a stage shorter than the poll interval (TTS of one line) may be skipped
    assert {"asr", "translate"} <= set(stages) and {"tts", "mux"} & set(stages)
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 1.0
    job = http.get(f"/jobs/{job_id}").json()["data"]
    stem = "jfk"  # outputs are named after the client's file, as the CLI names them
    mp4_name, srt_name = f"{stem}.ru.mp4", f"{stem}.ru.srt"
    assert {mp4_name, srt_name, f"{stem}.ru.vtt", f"{stem}.en.srt", f"{stem}.report.json"} <= set(
        job["outputs"]
    )

    mp4 = tmp_path / "out.mp4"
    mp4.write_bytes(http.get(job["output_urls"][mp4_name]).content)
    streams = ffprobe(mp4)
    kinds = [s["codec_type"] for s in streams]
    assert kinds.count("video") == 1 and kinds.count("audio") == 2 and kinds.count("subtitle") == 2
    assert streams[1]["tags"]["language"] == "rus"
    part = http.get(job["output_urls"][mp4_name], headers={"Range": "bytes=0-1023"})
    assert part.status_code == 206 and len(part.content) == 1024 and part.headers["accept-ranges"] == "bytes"

    srt = pysubs2.SSAFile.from_string(http.get(job["output_urls"][srt_name]).text)
    text = " ".join(e.plaintext for e in srt.events)
    assert srt.events and sum("а" <= ch.lower() <= "я" for ch in text) > 20
    report = http.get(job["output_urls"][f"{stem}.report.json"]).json()
    assert report["targets"]["ru"]["voice"] == "rhvoice:anna"
    assert {row["voice"] for row in report["targets"]["ru"]["sentences"]} == {"rhvoice:anna"}


def test_separation_and_diarization_run_on_their_own_deployments(
    http: httpx.Client, test_mp3: Path, tmp_path: Path
) -> None:
    """Issue 15, item 4: a dub with background 'separate' and diarization on (the default) goes through the
    SeparatorDeployment and the DiarizerDeployment (their replicas count the calls; one replica each in the CPU
    profile), and its report has the speakers and the background."""
    from ray import serve

    names = ("SeparatorDeployment", "DiarizerDeployment")

    def calls() -> dict[str, int]:
        return {n: serve.get_deployment_handle(n, app_name=APP).info.remote().result()["calls"] for n in names}

    before = calls()
    video = make_video(tmp_path / "test.mp4", test_mp3, 4.0, size="64x48")  # new content: nothing cached
    r = http.post("/jobs", json={"file_id": upload(http, video), "target_languages": ["ru"], "background": "separate"})
    assert r.status_code == 202, r.text
    events = follow(http, r.json()["data"]["job_id"])
    assert events[-1]["state"] == "succeeded", events[-1]
    after = calls()
    assert after["SeparatorDeployment"] == before["SeparatorDeployment"] + 1  # 4 s: one chunk
    assert after["DiarizerDeployment"] == before["DiarizerDeployment"] + 1
    report = http.get(events[-1]["output_urls"]["test.report.json"]).json()
    assert report["background"] == "separate" and report["speakers"]["count"] == 1
    assert {row["speaker"] for row in report["targets"]["ru"]["sentences"]} == {"S1"}
    assert {"separate", "diarize"} <= set(report["timings_s"])
    status = serve.status().applications[APP].deployments
    assert all(status[n].status == "HEALTHY" for n in names)


def test_v1_endpoints(http: httpx.Client, jfk_flac: Path, tmp_path: Path) -> None:
    audio = jfk_flac.read_bytes()
    got = {}
    for fmt in ("json", "text", "srt", "vtt", "verbose_json"):
        r = http.post("/v1/audio/transcriptions", files={"file": ("jfk.flac", audio)},
                      data={"model": "whisper-1", "response_format": fmt})  # fmt: skip
        assert r.status_code == 200, r.text
        got[fmt] = r
    assert "ask not what your country can do for you" in got["json"].json()["text"].lower()
    assert "fellow americans" in got["text"].text.lower()
    assert len(pysubs2.SSAFile.from_string(got["srt"].text).events) >= 2
    assert got["vtt"].text.startswith("WEBVTT")
    verbose = got["verbose_json"].json()
    assert verbose["language"] == "english" and 10 < verbose["duration"] < 12 and verbose["words"]

    speech = http.post(
        "/v1/audio/speech", json={"input": "Hello from the service.", "voice": "en", "response_format": "wav"}
    )
    assert speech.status_code == 200 and speech.headers["content-type"] == "audio/wav"
    wav = tmp_path / "speech.wav"
    wav.write_bytes(speech.content)
    stream = ffprobe(wav)[0]
    assert stream["codec_name"] == "pcm_s16le" and float(stream["duration"]) > 0.5
    listed = http.get("/v1/voices", params={"language": "ru"}).json()  # asked of the TTS replica
    assert "rhvoice:irina" in {v["id"] for v in listed["data"]} and listed["defaults"]["ru"].startswith("rhvoice:")
    nova = http.post("/v1/audio/speech", json={"input": "Привет!", "voice": "nova", "language": "ru", "response_format": "wav"})
    assert nova.status_code == 200 and ffprobe_bytes(nova.content, tmp_path)["sample_rate"] == "24000"  # RHVoice
    assert assert_envelope(http.post("/v1/audio/speech", json={"input": "x", "voice": "rhvoice:x"}), 422)

    texts = ["Good morning.", "The weather is cold today.", "I love my country."]
    r = http.post("/v1/translate", json={"texts": texts, "source_language": "en", "target_language": "ru"})
    assert r.status_code == 200, r.text
    out = r.json()["translations"]
    assert len(out) == len(texts)  # a line the model fails on comes back unchanged, never dropped
    assert "утр" in out[0].lower() and "холод" in out[1].lower()  # same order as sent


def test_errors_are_envelopes(http: httpx.Client, app_args: dict[str, Any]) -> None:
    uploads = Path(app_args["settings"]["storage"]["root"]) / "uploads"
    before = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
    big = http.post("/files/upload", files={"file": ("big.mp4", b"\0" * (MAX_FILE_SIZE + 500_000))})
    assert assert_envelope(big, 413)["error"]["code"] == "file_too_large"
    text = http.post("/files/upload", files={"file": ("notes.mp4", b"just some text, not media\n" * 50)})
    assert assert_envelope(text, 415)["error"]["code"] == "invalid_media"
    after = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
    assert after == before  # neither left a file (nor a .part) behind
    assert_envelope(http.get("/jobs/" + "0" * 32), 404)
    assert_envelope(http.get("/jobs/" + "0" * 32 + "/events"), 404)
    bad = http.post("/jobs", content=b'{"file_id": ', headers={"content-type": "application/json"})
    assert assert_envelope(bad, 422)["error"]["code"] == "invalid_json"
    assert_envelope(
        http.post("/v1/translate", json={"texts": ["x"] * 10_000, "source_language": "en", "target_language": "ru"}),
        413,
    )


def test_restart_resumes_from_finished_stages(
    http: httpx.Client, base_url: str, app_args: dict[str, Any], jfk_flac: Path, tmp_path: Path
) -> None:
    """Stop the app while a job runs (after ASR, during translation), start it again: the job completes,
    and its report shows ASR served from the stage cache."""
    from ray import serve

    from serve_app.app import build_app, deep_merge
    from serve_app.jobs import make_job_store
    from serve_app.server import load_profile

    video = make_video(tmp_path / "speech.mp4", jfk_flac, 12.0)  # new content: nothing cached yet
    r = http.post("/jobs", json={"file_id": upload(http, video), "target_languages": ["ru"], "mode": "subtitles"})
    job_id = r.json()["data"]["job_id"]
    deadline = time.monotonic() + 120
    while (job := http.get(f"/jobs/{job_id}").json()["data"])["stage"] != "translate":
        assert job["state"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.2)

    serve.delete(APP)  # graceful: the JobRunner puts its running job back in the queue
    store = make_job_store(app_args["settings"]["service"]["job_store_url"])
    try:
        record = store.get(job_id)
        assert record is not None and record.state.value == "queued" and not record.outputs
    finally:
        store.close()

    profile = load_profile(CONFIG)["applications"][0]
    serve.run(build_app(deep_merge(profile["args"], app_args)), name=APP, route_prefix="/")
    events = follow(http, job_id)
    assert events[-1]["state"] == "succeeded", events[-1]
    report_name = next(n for n in events[-1]["outputs"] if n.endswith(".report.json"))
    report = http.get(events[-1]["output_urls"][report_name]).json()
    assert "asr" in report["cache_hits"]  # ASR finished before the stop and was not redone
