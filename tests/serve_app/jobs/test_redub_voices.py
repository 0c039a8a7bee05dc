"""A re-dub (PATCH /jobs/{id}/segments) speaks with the job's own voices (issue 14): the real TTS stage (RHVoice)
in the real runner under a JobWorker, fake ASR and translator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from configs.settings import StorageSettings
from pipelines import voices
from pipelines.schema import Clip, Translation
from pipelines.tts import TTSStage
from serve_app.api.services import Services
from tests.serve_app.conftest import FakeTranslator
from tests.serve_app.jobs.redub_crash import TwoSentenceASR
from tests.serve_app.test_api import upload

MODELS_DIR = StorageSettings().models_dir


class RecordingTTS(TTSStage):
    """The real TTS stage, recording the voice of each call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.voices: list[str | None] = []

    def __call__(self, translations: Sequence[Translation], language: str, voice: str | None = None) -> list[Clip]:
        self.voices.append(voice)
        return super().__call__(translations, language, voice)


def test_a_redub_keeps_the_jobs_voice(client: Any, services: Services, tiny_video: Path) -> None:
    from pipelines.runner import Pipeline
    from serve_app.jobs import JobWorker

    voices.pull(MODELS_DIR, "ru")
    settings = services.settings
    settings.translator.shorten_ratio = 0.0  # the fake translator cannot shorten; real speech overflows 3 s
    tts = RecordingTTS(settings.tts, MODELS_DIR, cache_dir=settings.storage.cache_dir / "tts")
    worker = JobWorker(
        services.jobs, lambda: Pipeline(settings, asr=TwoSentenceASR(), translator=FakeTranslator(), tts=tts)
    )
    r = upload(client, tiny_video, "/jobs/upload", target_languages="ru", voices='{"ru": "rhvoice:anna"}')
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["job_id"]
    assert worker.run_once()
    job = client.get(f"/jobs/{job_id}").json()["data"]
    assert job["state"] == "succeeded", job
    report_name = next(n for n in job["outputs"] if n.endswith(".report.json"))
    v1 = client.get(job["output_urls"][report_name]).json()
    assert v1["targets"]["ru"]["voice"] == "rhvoice:anna" and tts.voices == ["rhvoice:anna"]
    assert settings.tts.voices.get("ru") != "rhvoice:anna"  # the job's own, not the configured voice

    rows = v1["targets"]["ru"]["sentences"]
    edit = {"target_language": "ru", "segments": [{"id": rows[1]["id"], "translation": "Спросите себя."}]}
    assert client.patch(f"/jobs/{job_id}/segments", json=edit).status_code == 202
    assert worker.run_once()
    job2 = client.get(f"/jobs/{job_id}").json()["data"]
    assert job2["state"] == "succeeded", job2
    v2 = client.get(job2["output_urls"][report_name]).json()
    assert v2["version"] == 2 and v2["targets"]["ru"]["resynthesized"] == 1
    assert tts.voices == ["rhvoice:anna", "rhvoice:anna"]  # the re-dub spoke with the job's voice
    assert v2["targets"]["ru"]["voice"] == "rhvoice:anna" and v2["targets"]["ru"]["voice_info"]["chosen_by"] == "job"
    assert [r["voice"] for r in v2["targets"]["ru"]["sentences"]] == ["rhvoice:anna", "rhvoice:anna"]
