"""PATCH /jobs/{id}/segments with speaker edits (issue 15 item 4): a sentence's speaker and a speaker's voice,
re-dubbing only the sentences that changed. In-process app and a JobWorker running the real runner with the real
diarizer (on a two-speaker conversation built from real recordings, tests/pipelines/test_diarize.py), the real
TTS stage (RHVoice, its clip cache) and the fake ASR (words on the known turns) and translator."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from configs.settings import StorageSettings
from pipelines import voices
from pipelines.schema import Transcript
from serve_app.api.services import Services
from tests.pipelines.test_diarize import JFK_TEXT, _transcript, conversation  # noqa: F401
from tests.serve_app.conftest import FakeTranslator
from tests.serve_app.test_api import assert_envelope, upload

MODELS_DIR = StorageSettings().models_dir


class TurnsASR:
    """Hears the conversation's words on its known turns (JFK, joe, JFK)."""

    name = "fake-asr-turns"

    def __init__(self, turns: list[tuple[float, float, str]]) -> None:
        self.turns = turns

    def __call__(self, audio: Any, *, language: str | None = None) -> Transcript:
        return replace(_transcript(self.turns, JFK_TEXT), language=language or "en")


@pytest.fixture(scope="module")
def two_speaker_video(conversation: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    from tests.conftest import make_video

    wav, turns = conversation
    return make_video(tmp_path_factory.mktemp("v2") / "talk2.mp4", wav, turns[-1][1] + 0.5, size="64x48")


def speaker_stages(settings: Any, turns: list[tuple[float, float, str]]) -> dict[str, Any]:
    """The stages a two-speaker job runs with: fake ASR and translator, the real TTS stage (RHVoice for ru)."""
    from pipelines.tts import TTSStage

    voices.pull(MODELS_DIR, "ru")
    settings.translator.shorten_ratio = 0.0  # the fake translator cannot shorten
    tts = TTSStage(settings.tts, MODELS_DIR, cache_dir=settings.storage.cache_dir / "tts")
    return {"asr": TurnsASR(turns), "translator": FakeTranslator(), "tts": tts}


def _report(client: Any, job: dict[str, Any]) -> dict[str, Any]:
    name = next(n for n in job["outputs"] if n.endswith(".report.json"))
    return client.get(job["output_urls"][name]).json()  # type: ignore[no-any-return]


def _clips(services: Services) -> int:
    return len(list((services.settings.storage.cache_dir / "tts").glob("*.wav")))


def test_a_speaker_and_a_voice_change_redub_only_their_sentences(
    client: Any,
    services: Services,
    conversation: Any,  # noqa: F811
    two_speaker_video: Path,
) -> None:
    from pipelines.runner import Pipeline
    from serve_app.jobs import JobWorker

    stages = speaker_stages(services.settings, conversation[1])
    worker = JobWorker(services.jobs, lambda: Pipeline(services.settings, **stages))
    r = upload(client, two_speaker_video, "/jobs/upload", target_languages="ru", background="duck")  # no separation
    assert r.status_code == 202, r.text
    job_id = r.json()["data"]["job_id"]
    assert worker.run_once()
    job = client.get(f"/jobs/{job_id}").json()["data"]
    assert job["state"] == "succeeded", job
    v1 = _report(client, job)
    assert [s["id"] for s in v1["speakers"]["speakers"]] == ["S1", "S2"]
    target = v1["targets"]["ru"]
    rows, before = target["sentences"], target["speaker_voices"]
    assert {r["speaker"] for r in rows} == {"S1", "S2"} and before["S1"] != before["S2"]
    assert all(r["voice"] == before[r["speaker"]] for r in rows)
    url = f"/jobs/{job_id}/segments"

    # Bad input: 422 with the envelope, the job untouched.
    moved = next(r for r in rows if r["speaker"] == "S2")
    for body, code in (
        ({"segments": [{"id": moved["id"], "speaker": "S9"}]}, "invalid_edit"),
        ({"segments": [{"id": 999, "speaker": "S1"}]}, "invalid_edit"),
        ({"speaker_voices": {"S7": "rhvoice:anna"}}, "invalid_edit"),
        ({"speaker_voices": {"S1": "rhvoice:nobody"}}, "invalid_voice"),
        ({"speaker_voices": {"S1": "piper:bundled:en_US-joe-medium"}}, "invalid_voice"),  # an English voice
        ({"speaker_voices": {"S1": "piper:/etc/passwd"}}, "invalid_voice"),  # never a file from the network
        ({"segments": [{"id": moved["id"]}]}, "validation_error"),  # neither a translation nor a speaker
        ({}, "validation_error"),  # nothing at all
    ):
        assert_envelope(client.patch(url, json={"target_language": "ru", **body}), 422, code)
    record = services.jobs.get(job_id)
    assert record.output_version == 1 and record.redub is None and record.state.value == "succeeded"
    same = {"target_language": "ru", "segments": [{"id": moved["id"], "speaker": "S2"}],
            "speaker_voices": {"S1": before["S1"]}}  # fmt: skip
    assert client.patch(url, json=same).status_code == 200  # what it is already: nothing changed

    # A sentence of S2 goes to S1: only it is spoken again, in S1's voice.
    clips = _clips(services)
    r = client.patch(url, json={"target_language": "ru", "segments": [{"id": moved["id"], "speaker": "S1"}]})
    assert r.status_code == 202, r.text
    assert r.json()["data"]["changed"] == [moved["id"]] and r.json()["data"]["version"] == 2
    assert worker.run_once()
    v2 = _report(client, client.get(f"/jobs/{job_id}").json()["data"])
    t2 = v2["targets"]["ru"]
    assert v2["version"] == 2 and t2["resynthesized"] == 1 and v2["redub"]["resynthesized"] == 1
    assert v2["redub"]["edited"] == [moved["id"]] and v2["redub"]["speakers"] == {str(moved["id"]): "S1"}
    assert _clips(services) == clips + 1  # the others came from the clip cache
    by_id = {r["id"]: r for r in t2["sentences"]}
    assert by_id[moved["id"]]["speaker"] == "S1" and by_id[moved["id"]]["voice"] == before["S1"]
    assert t2["speaker_voices"] == before
    for row in rows:
        if row["id"] != moved["id"]:
            assert (by_id[row["id"]]["speaker"], by_id[row["id"]]["voice"]) == (row["speaker"], row["voice"])

    # S2 gets another voice: exactly S2's sentences are spoken again; the moved one stays with S1.
    other = next(
        v["id"] for v in voices.list_voices(MODELS_DIR, "ru")
        if v["installed"] and v["id"].startswith("rhvoice:") and v["id"] not in before.values()
    )  # fmt: skip
    s2 = sorted(i for i, row in by_id.items() if row["speaker"] == "S2")
    cache_dir = services.settings.storage.cache_dir
    for stage_cache in (d for d in cache_dir.iterdir() if d.is_dir() and d.name != "tts"):
        shutil.rmtree(stage_cache)  # the retention sweep took the input's audio and diarization, not the clips
    r = client.patch(url, json={"target_language": "ru", "speaker_voices": {"S2": other}})
    assert r.status_code == 202, r.text
    assert r.json()["data"]["changed"] == s2
    assert worker.run_once()
    v3 = _report(client, client.get(f"/jobs/{job_id}").json()["data"])
    t3 = v3["targets"]["ru"]
    assert t3["resynthesized"] == len(s2) and v3["redub"]["speaker_voices"] == {"S2": other}
    assert _clips(services) == clips + 1 + len(s2)
    assert t3["speaker_voices"] == {"S1": before["S1"], "S2": other}
    assert v3["speakers"]["method"] == "kept" and [s["id"] for s in v3["speakers"]["speakers"]] == ["S1", "S2"]
    for row in t3["sentences"]:
        assert row["voice"] == t3["speaker_voices"][row["speaker"]]
        assert row["speaker"] == by_id[row["id"]]["speaker"]  # the moved sentence kept its new speaker
    assert [v["version"] for v in client.get(f"/jobs/{job_id}/versions").json()["data"]["versions"]] == [1, 2, 3]
