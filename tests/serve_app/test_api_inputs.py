"""POST /jobs with the other input kinds (issue 18): a URL fetched by the runner from a local HTTP server, and
subtitle files (as the source of a video's transcript, or alone). The real job store, storage, runner and
fetch child; fake model stages behind the real deployment classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.runner import Pipeline
from serve_app.api.services import Services
from serve_app.jobs import JobWorker
from tests.serve_app.conftest import make_services, make_settings
from tests.serve_app.test_api import assert_envelope, upload

SRT = "1\n00:00:00,300 --> 00:00:01,800\nAsk not what your country can do.\n\n2\n00:00:02,000 --> 00:00:02,900\nThank you.\n"


@pytest.fixture
def allowed(tmp_path: Path, fakes: dict[str, Any]) -> Any:
    """A client whose settings allow-list the local media server (127.0.0.1)."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    services = make_services(make_settings(tmp_path / "var", fetch={"allow_hosts": ["127.0.0.1"]}), fakes)
    with TestClient(get_application(services=services), base_url="http://localhost", raise_server_exceptions=False) as client:
        client.services = services  # type: ignore[attr-defined]
        yield client
    services.jobs.store.close()


def run_job(services: Services, fakes: dict[str, Any], job_id: str) -> dict[str, Any]:
    worker = JobWorker(services.jobs, lambda: Pipeline(services.settings, **fakes), poll_s=0.05)
    assert worker.run_once()
    return services.jobs.get(job_id).model_dump(mode="json")


def report_of(services: Services, job_id: str, stem: str) -> dict[str, Any]:
    return json.loads(services.storage.output_path(job_id, f"{stem}.report.json").read_text(encoding="utf-8"))


def test_a_url_job_matches_the_same_file_uploaded(allowed: Any, fakes: dict[str, Any], media_server: Any, url_video: Path) -> None:
    services = allowed.services
    r = allowed.post("/jobs", json={"url": media_server.url("/talk.mp4"), "target_languages": ["ru"], "mode": "subtitles"})
    assert r.status_code == 202, r.text
    by_url = r.json()["data"]["job_id"]
    up = upload(allowed, url_video, "/jobs/upload", target_languages="ru", mode="subtitles")
    by_upload = up.json()["data"]["job_id"]
    jobs = {job_id: run_job(services, fakes, job_id) for job_id in (by_url, by_upload)}
    assert all(job["state"] == "succeeded" for job in jobs.values()), jobs
    assert jobs[by_url]["outputs"] == jobs[by_upload]["outputs"]  # talk.ru.mp4, talk.ru.srt, ... (named after the URL)
    a, b = report_of(services, by_url, "talk"), report_of(services, by_upload, "talk")
    assert a["targets"] == b["targets"] and a["duration_s"] == b["duration_s"]
    assert a["fetch"]["url"] == media_server.url("/talk.mp4") and a["fetch"]["bytes"] == url_video.stat().st_size
    assert "fetch" in a["timings_s"] and b["fetch"] is None
    srt = [services.storage.output_path(j, "talk.ru.srt").read_text(encoding="utf-8") for j in (by_url, by_upload)]
    assert srt[0] == srt[1]


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/talk.mp4", "http://localhost/talk.mp4", "http://169.254.169.254/", "/etc/passwd"]
)
def test_refused_urls_are_4xx_envelopes_and_record_nothing(client: Any, services: Services, url: str) -> None:
    r = client.post("/jobs", json={"url": url, "target_languages": ["ru"]})
    body = assert_envelope(r, 400, "url_refused")
    assert "/etc/passwd" not in body["message"] or url == "/etc/passwd"
    assert services.jobs.list() == []


def test_a_redirect_to_a_private_host_fails_the_job_with_url_refused(
    allowed: Any, fakes: dict[str, Any], media_server: Any
) -> None:
    r = allowed.post("/jobs", json={"url": media_server.url("/redirect/169.254.169.254/x.mp4"), "target_languages": ["ru"]})
    assert r.status_code == 202, r.text  # the first host is allowed; the redirect is found while fetching
    job = run_job(allowed.services, fakes, r.json()["data"]["job_id"])
    assert job["state"] == "failed" and job["error"]["code"] == "url_refused"
    assert not [p for p in (Path(allowed.services.settings.storage.cache_dir) / "fetch").rglob("*") if p.is_file()]


def test_job_input_rules(client: Any) -> None:
    both = client.post("/jobs", json={"file_id": "0" * 32, "url": "https://example.com/v.mp4", "target_languages": ["ru"]})
    assert_envelope(both, 422)
    assert_envelope(client.post("/jobs", json={"target_languages": ["ru"]}), 422)


def test_subtitles_alone_and_as_the_source(client: Any, services: Services, fakes: dict[str, Any], tmp_path: Path, url_video: Path) -> None:
    srt = tmp_path / "talk.en.srt"
    srt.write_text(SRT, encoding="utf-8")
    with open(srt, "rb") as fh:
        up = client.post("/files/upload", files={"file": (srt.name, fh, "application/x-subrip")})
    assert up.status_code == 201, up.text
    subs_id = up.json()["data"]["file_id"]
    alone = client.post("/jobs", json={"file_id": subs_id, "target_languages": ["es"], "mode": "subtitles"})
    assert alone.status_code == 202, alone.text
    job = run_job(services, fakes, alone.json()["data"]["job_id"])
    assert job["state"] == "succeeded" and sorted(job["outputs"]) == ["talk.es.srt", "talk.es.vtt", "talk.report.json"]
    video_id = upload(client, url_video).json()["data"]["file_id"]
    body = {"file_id": video_id, "source_subtitles_file_id": subs_id, "target_languages": ["es"], "source_language": "en",
            "mode": "subtitles"}  # fmt: skip
    with_video = client.post("/jobs", json=body)
    assert with_video.status_code == 202, with_video.text
    job_id = with_video.json()["data"]["job_id"]
    job = run_job(services, fakes, job_id)
    report = report_of(services, job_id, "talk")
    assert job["state"] == "succeeded" and "asr" not in report["timings_s"] and fakes["asr"].calls == []
    assert [r["source"] for r in report["targets"]["es"]["sentences"]] == ["Ask not what your country can do.", "Thank you."]
    not_subs = client.post("/jobs", json={**body, "source_subtitles_file_id": video_id})
    assert_envelope(not_subs, 400)


def test_a_malformed_subtitle_upload_is_422_naming_the_line(client: Any, settings: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\n00:00:03 --> 00:00:04\nthere\n", encoding="utf-8")
    with open(bad, "rb") as fh:
        r = client.post("/files/upload", files={"file": (bad.name, fh)})
    body = assert_envelope(r, 422, "invalid_subtitles")
    assert "bad.srt line 6" in body["message"]
    assert not list((Path(settings.storage.root) / "uploads").glob("*/meta.json"))


def test_jobs_upload_takes_a_subtitle_file_alone(client: Any, services: Services, fakes: dict[str, Any], tmp_path: Path) -> None:
    srt = tmp_path / "talk.en.srt"
    srt.write_text(SRT, encoding="utf-8")
    with open(srt, "rb") as fh:
        r = client.post("/jobs/upload", files={"file": (srt.name, fh)}, data={"target_languages": "de", "mode": "dub"})
    assert r.status_code == 202, r.text
    job = run_job(services, fakes, r.json()["data"]["job_id"])
    assert job["state"] == "succeeded" and "talk.de.m4a" in job["outputs"] and "talk.de.srt" in job["outputs"]
