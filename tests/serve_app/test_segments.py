"""PATCH /jobs/{id}/segments (a versioned re-dub of only the changed sentences), GET /config, the versions
and the original audio, in-process: get_application + a JobWorker running the real runner over fake stages."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.schema import Clip, Translation
from serve_app.api.services import Services
from tests.serve_app.conftest import FakeSynth, FakeTranslator, FakeTTS
from tests.serve_app.jobs.redub_crash import TwoSentenceASR
from tests.serve_app.test_api import assert_envelope, upload


class CountingTTS(FakeTTS):
    """Caches clips by text, like the real TTS stage, and counts what it really synthesised."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[str, np.ndarray] = {}
        self.texts: list[str] = []

    def __call__(self, translations: Sequence[Translation], language: str, voice: str | None = None) -> list[Clip]:
        self.synthesized_count = 0
        clips = []
        for t in translations:
            if t.text not in self.cache:
                self.cache[t.text] = FakeSynth().synthesize(t.text)[:8000]
                self.synthesized_count += 1
                self.texts.append(t.text)
            clips.append(Clip(t.id, self.cache[t.text], 16000))
        return clips


@pytest.fixture
def worker(services: Services) -> Any:
    from pipelines.runner import Pipeline
    from serve_app.jobs import JobWorker

    tts = CountingTTS()
    w = JobWorker(
        services.jobs, lambda: Pipeline(services.settings, asr=TwoSentenceASR(), translator=FakeTranslator(), tts=tts)
    )
    w.tts = tts  # type: ignore[attr-defined]
    return w


def _report(client: Any, job: dict[str, Any]) -> dict[str, Any]:
    name = next(n for n in job["outputs"] if n.endswith(".report.json"))
    return client.get(job["output_urls"][name]).json()  # type: ignore[no-any-return]


def _finished_job(client: Any, worker: Any, video: Path, **fields: str) -> dict[str, Any]:
    r = upload(client, video, "/jobs/upload", target_languages="ru", **fields)
    assert r.status_code == 202, r.text
    assert worker.run_once()
    job = client.get(f"/jobs/{r.json()['data']['job_id']}").json()["data"]
    assert job["state"] == "succeeded", job
    return job  # type: ignore[no-any-return]


def test_config(client: Any, services: Services) -> None:
    data = client.get("/config").json()["data"]
    assert data["max_file_size"] == services.settings.MAX_FILE_SIZE
    assert {"code": "ru", "name": "Russian"} in data["languages"] and "video/*" in data["accept"]


def test_edit_one_sentence_makes_a_new_version_resynthesising_only_it(
    client: Any, worker: Any, tiny_video: Path
) -> None:
    job = _finished_job(client, worker, tiny_video)
    job_id = job["job_id"]
    stem = next(n for n in job["outputs"] if n.endswith(".report.json")).removesuffix(".report.json")
    v1 = _report(client, job)
    rows = v1["targets"]["ru"]["sentences"]
    assert len(rows) == 2 and v1["targets"]["ru"]["resynthesized"] == 2
    v1_srt = client.get(job["output_urls"][f"{stem}.ru.srt"]).text

    edits = [{"id": rows[0]["id"], "translation": rows[0]["translation"]},  # unchanged: not counted
             {"id": rows[1]["id"], "translation": "Спросите, что вы можете сделать."}]  # fmt: skip
    r = client.patch(f"/jobs/{job_id}/segments", json={"target_language": "ru", "segments": edits})
    assert r.status_code == 202, r.text
    data = r.json()["data"]
    assert data["changed"] == [rows[1]["id"]] and data["version"] == 2 and data["job"]["state"] == "queued"
    assert "1 changed sentence" in r.json()["message"]
    assert_envelope(
        client.patch(f"/jobs/{job_id}/segments", json={"target_language": "ru", "segments": edits}), 409, "job_busy"
    )

    assert worker.run_once()
    job2 = client.get(f"/jobs/{job_id}").json()["data"]
    assert job2["state"] == "succeeded" and set(job2["outputs"]) == set(job["outputs"])
    v2 = _report(client, job2)
    assert v2["version"] == 2 and v2["previous_version"] == 1
    assert v2["targets"]["ru"]["resynthesized"] == 1 and v2["redub"]["edited"] == [rows[1]["id"]]
    assert worker.tts.texts[-1] == "Спросите, что вы можете сделать."
    assert "edited" in v2["targets"]["ru"]["sentences"][1]["flags"]
    srt = client.get(job2["output_urls"][f"{stem}.ru.srt"]).text
    assert "Спросите, что вы можете" in srt and "Спросите" not in v1_srt

    versions = client.get(f"/jobs/{job_id}/versions").json()["data"]
    assert versions["current_version"] == 2 and [v["version"] for v in versions["versions"]] == [1, 2]
    old = versions["versions"][0]
    assert client.get(old["output_urls"][f"{stem}.ru.srt"]).text == v1_srt
    assert_envelope(client.get(f"/jobs/{job_id}/versions/1/outputs/..%2Fjobs.db"), 404)

    same = client.patch(f"/jobs/{job_id}/segments", json={"target_language": "ru", "segments": edits[1:]})
    assert (
        same.status_code == 200 and same.json()["data"]["changed"] == [] and "nothing changed" in same.json()["message"]
    )


@pytest.mark.parametrize("end", ["cancelled", "failed"])
def test_a_redub_that_ends_without_success_is_no_longer_pending(
    client: Any, worker: Any, services: Services, tiny_video: Path, end: str
) -> None:
    job = _finished_job(client, worker, tiny_video)
    url = f"/jobs/{job['job_id']}"
    rows = _report(client, job)["targets"]["ru"]["sentences"]
    edit = {"target_language": "ru", "segments": [{"id": rows[0]["id"], "translation": "Другое."}]}
    assert client.patch(f"{url}/segments", json=edit).status_code == 202
    assert client.get(f"{url}/versions").json()["data"]["pending"]["version"] == 2
    if end == "cancelled":
        assert client.delete(url).status_code == 200
    else:  # the spec file is gone: the re-dub fails in the worker
        [spec] = (services.storage.job_dir(job["job_id"]) / "redub").glob("v2-*.json")
        spec.unlink()
        assert worker.run_once()
    assert client.get(url).json()["data"]["state"] == end
    versions = client.get(f"{url}/versions").json()["data"]
    assert versions["pending"] is None and versions["current_version"] == 1


def test_concurrent_edits_never_overwrite_each_other(
    client: Any, worker: Any, services: Services, tiny_video: Path
) -> None:
    """Two PATCHes racing for version 2: each writes its own spec file, the one whose requeue wins runs with
    ITS translations, and the loser is refused (409), also once the winner's version is done."""
    from serve_app.jobs.redub import commit_redub, plan_redub

    job = _finished_job(client, worker, tiny_video)
    job_id = job["job_id"]
    sid = _report(client, job)["targets"]["ru"]["sentences"][0]["id"]
    _, first = plan_redub(services.jobs, job_id, "ru", [(sid, "Первая правка.")])
    _, second = plan_redub(services.jobs, job_id, "ru", [(sid, "Вторая правка.")])
    assert first is not None and second is not None
    assert first.version == second.version == 2 and first.spec_id != second.spec_id
    assert commit_redub(services.jobs, first) is not None
    assert commit_redub(services.jobs, second) is None  # lost the race: request_redub answers 409
    assert worker.run_once()
    job2 = client.get(f"/jobs/{job_id}").json()["data"]
    assert job2["state"] == "succeeded" and services.jobs.get(job_id).output_version == 2, job2
    assert _report(client, job2)["targets"]["ru"]["sentences"][0]["translation"] == "Первая правка."
    assert commit_redub(services.jobs, second) is None  # finished again, but no longer at version 1


def test_original_audio_for_the_player_switch(client: Any, worker: Any, tiny_video: Path) -> None:
    job = _finished_job(client, worker, tiny_video)
    r = client.get(f"/jobs/{job['job_id']}/original-audio")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mp4"
    part = client.get(f"/jobs/{job['job_id']}/original-audio", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.content) == 10
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", "-"], input=r.content,
                           capture_output=True, check=True)  # fmt: skip
    streams = json.loads(probe.stdout)["streams"]
    assert [s["codec_type"] for s in streams] == ["audio"] and streams[0]["codec_name"] == "aac"


def test_edit_errors_are_envelopes(client: Any, worker: Any, tiny_video: Path) -> None:
    job = _finished_job(client, worker, tiny_video)
    url = f"/jobs/{job['job_id']}/segments"
    assert_envelope(
        client.patch(url, json={"target_language": "ru", "segments": [{"id": 99, "translation": "x"}]}),
        422,
        "invalid_edit",
    )
    assert_envelope(
        client.patch(url, json={"target_language": "ru", "segments": [{"id": 0, "translation": "  "}]}),
        422,
        "invalid_edit",
    )
    assert_envelope(
        client.patch(url, json={"target_language": "de", "segments": [{"id": 0, "translation": "x"}]}),
        422,
        "invalid_edit",
    )
    assert_envelope(client.patch(url, json={"target_language": "xx", "segments": [{"id": 0, "translation": "x"}]}), 422)
    assert_envelope(client.patch(url, json={"target_language": "ru", "segments": []}), 422, "validation_error")
    assert_envelope(
        client.patch(
            "/jobs/" + "0" * 32 + "/segments",
            json={"target_language": "ru", "segments": [{"id": 0, "translation": "x"}]},
        ),
        404,
        "job_not_found",
    )
    token = client.get("/").cookies["csrftoken"]
    assert token
    assert_envelope(
        client.patch(url, json={"target_language": "ru", "segments": [{"id": 0, "translation": "x"}]}),
        403,
        "csrf_failed",
    )
