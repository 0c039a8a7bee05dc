"""The job API's speaker fields (issue 15), in JSON (POST /jobs) and in the upload form (POST /jobs/upload): good
values reach the job's request; bad counts, contradictions and unknown per-speaker voices are a 422 envelope before
any job (and a refused upload leaves no file behind). A dub over the separated background reports its ``separate``
stage in the job's events."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.serve_app.test_api import assert_envelope, upload

BAD = [
    ({"speakers": 0}, "validation_error", "invalid_request"),
    ({"speakers": 500}, "validation_error", "invalid_request"),
    ({"min_speakers": 5, "max_speakers": 2}, "invalid_speakers", "invalid_speakers"),
    ({"speakers": 4, "max_speakers": 3}, "invalid_speakers", "invalid_speakers"),
    ({"speaker_voices": {"S2": "rhvoice:nobody"}}, "invalid_voice", "invalid_voice"),
    ({"speaker_voices": {"S2": "kokoro:jm_kumo"}}, "invalid_voice", "invalid_voice"),  # it does not speak ru
    ({"speaker_voices": {"bob": "espeak:en-us"}}, "invalid_speakers", "invalid_speakers"),
]


def _form(fields: dict[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}


@pytest.mark.parametrize(("extra", "code", "form_code"), BAD)
def test_bad_speaker_fields_are_refused_before_any_job(
    client: Any, tiny_video: Path, services: Any, extra: dict[str, Any], code: str, form_code: str
) -> None:
    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    body = {"file_id": file_id, "target_languages": ["ru"], "mode": "dub", "background": "duck", **extra}
    assert_envelope(client.post("/jobs", json=body), 422, code)
    form = upload(client, tiny_video, "/jobs/upload", target_languages="ru", background="duck", **_form(extra))
    assert_envelope(form, 422, form_code)
    assert client.get("/jobs").json()["data"]["jobs"] == []
    assert [p.name for p in services.jobs.storage.uploads_dir.iterdir() if not p.name.startswith(".")] == [file_id]


def test_speaker_fields_reach_the_job(client: Any, tiny_video: Path, services: Any) -> None:
    file_id = upload(client, tiny_video).json()["data"]["file_id"]
    body = {"file_id": file_id, "target_languages": ["ru"], "mode": "subtitles", "min_speakers": 2, "max_speakers": 3,
            "speaker_voices": {"s2": "rhvoice:irina"}}  # fmt: skip
    r = client.post("/jobs", json=body)
    assert r.status_code == 202, r.text
    request = services.jobs.get(r.json()["data"]["job_id"]).request
    assert (request.speakers, request.min_speakers, request.max_speakers) == (None, 2, 3)
    assert request.speaker_voices == {"S2": "rhvoice:irina"}  # canonical label


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"speakers": "2", "speaker_voices": '{"S2": "rhvoice:irina"}'}, (2, None, None, {"S2": "rhvoice:irina"})),
        ({"speakers": "auto", "min_speakers": "2", "max_speakers": "5", "speaker_voices": "s1=espeak:ru, S2=rhvoice:irina"},
         (None, 2, 5, {"S1": "espeak:ru", "S2": "rhvoice:irina"})),
        ({"speakers": "", "min_speakers": " "}, (None, None, None, {})),
    ],
)  # fmt: skip
def test_the_upload_form_takes_the_speaker_fields(
    client: Any, tiny_video: Path, services: Any, fields: dict[str, str], expected: tuple[Any, ...]
) -> None:
    r = upload(client, tiny_video, "/jobs/upload", target_languages="ru", mode="subtitles", **fields)
    assert r.status_code == 202, r.text
    request = services.jobs.get(r.json()["data"]["job_id"]).request
    assert (request.speakers, request.min_speakers, request.max_speakers, request.speaker_voices) == expected


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"speakers": "two"}, "speakers"),
        ({"speaker_voices": "S2"}, "SPEAKER=ENGINE:VOICE"),
        ({"speaker_voices": "{"}, "JSON"),
    ],
)
def test_unreadable_form_fields_are_invalid_request(
    client: Any, tiny_video: Path, fields: dict[str, str], match: str
) -> None:
    body = assert_envelope(
        upload(client, tiny_video, "/jobs/upload", target_languages="ru", **fields), 422, "invalid_request"
    )
    assert match in body["message"] and client.get("/jobs").json()["data"]["jobs"] == []


def test_the_page_config_names_the_speakers_limit(client: Any) -> None:
    data = client.get("/config").json()["data"]
    assert data["speakers_limit"] == 20 and data["speakers_enabled"] is True


def test_a_separating_job_reports_its_separate_stage(
    client: Any, tiny_video: Path, services: Any, fakes: dict[str, Any]
) -> None:
    """The real separation stage under the fake ASR, translator and TTS; it holds its stage until the client has
    seen ``separate`` in the events (so the test does not race the 0.5 s poll)."""
    from pipelines.runner import Pipeline
    from pipelines.separate import SpleeterSeparator
    from serve_app.jobs import JobWorker

    seen, reported = threading.Event(), []

    class Held(SpleeterSeparator):
        def __call__(self, input_path: Path, out_path: Path, *, progress: Any = None) -> Path:
            def report(done_s: float) -> None:
                reported.append(done_s)
                progress(done_s)

            out = super().__call__(input_path, out_path, progress=report)
            seen.wait(60)
            return out

    settings = services.settings
    assert settings.mix.background == "separate" and settings.diarize.enabled
    r = upload(client, tiny_video, "/jobs/upload", target_languages="ru", mode="dub", speakers="1")
    job_id = r.json()["data"]["job_id"]
    separator = Held(settings.storage.models_dir)
    worker = JobWorker(services.jobs, lambda: Pipeline(settings, separator=separator, **fakes), poll_s=0.05)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    try:
        events = []
        with client.stream("GET", f"/jobs/{job_id}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[len("data:") :]))
                    if events[-1]["stage"] == "separate":
                        seen.set()
    finally:
        seen.set()
        thread.join(60)
    stages = [e["stage"] for e in events]
    assert "separate" in stages and events[-1]["state"] == "succeeded", stages
    separating = [e["progress"] for e in events if e["stage"] == "separate"]
    assert min(separating) >= 0.269  # past extract, ASR, diarize and segment: the tracker gives it a share
    assert reported and reported[-1] == pytest.approx(3.0, abs=0.05)  # the seconds separated, up to the input's
