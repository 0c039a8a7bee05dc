"""`openai:<voice>` voices against real servers: this project's own `/v1/audio/speech` (uvicorn on 127.0.0.1,
real TTS behind it, real Whisper to hear the result), and a small stand-in for what that server does not do
(raw PCM answers, a transient 503). A dead server is one clear error before any work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI, Request, Response

from bench.tts_cer import cer
from configs.settings import ASRSettings, OpenAISpeechSettings, Settings, StorageSettings, TTSSettings
from pipelines.errors import BackendUnavailable, ModelError
from pipelines.media import write_wav
from pipelines.schema import JobRequest, Translation
from pipelines.tts import EspeakSynthesizer, TTSStage
from tests.serve_app.conftest import Server, free_port, make_settings

MODELS_DIR = StorageSettings().models_dir
KEY = "test-key-i14"


@pytest.fixture(scope="module")
def project_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This project's own app (real TTS stages), with an API key, served by uvicorn."""
    from serve_app.api.main import get_application
    from serve_app.api.services import Services

    services = Services.local(make_settings(tmp_path_factory.mktemp("openai-speech") / "var", API_KEYS=[KEY]))
    with Server(get_application(services=services)) as server:
        yield server
    services.jobs.store.close()


def _stage(base_url: str, tmp_path: Path, **openai: object) -> TTSStage:
    settings = TTSSettings(voices={"en": "openai:en", "de": "openai:de"},
                           openai=OpenAISpeechSettings(base_url=base_url, **openai))  # type: ignore[arg-type]  # fmt: skip
    return TTSStage(settings, MODELS_DIR, cache_dir=tmp_path / "tts")


def test_speaks_through_the_projects_own_speech_server(project_server: Server, tmp_path: Path) -> None:
    from pipelines.asr import WhisperASR

    stage = _stage(f"{project_server.url}/v1", tmp_path, api_key=KEY, model="tts-1", timeout_s=120)
    assert stage.voice_for("en") == "openai:en"  # the reachability check passed
    from pipelines.voices import list_voices

    [row] = [r for r in list_voices(MODELS_DIR, "en", stage.settings.voices) if r["engine"] == "openai"]
    assert row["id"] == "openai:en" and row["default"]
    assert not [
        r for r in list_voices(MODELS_DIR, "en", stage.settings.voices) if r["id"].startswith("piper:") and r["default"]
    ]
    text = "The weather is lovely today, so we are going to the park."
    [clip] = stage([Translation(0, "x", text)], "en")
    assert 1.5 < clip.duration_s < 8.0 and float(np.abs(clip.samples).max()) > 0.05
    write_wav(tmp_path / "en.wav", clip.samples, clip.sample_rate_hz)
    heard = " ".join(s.text for s in WhisperASR(ASRSettings(), MODELS_DIR)(tmp_path / "en.wav", language="en").segments)
    assert "park" in heard.lower() and cer(text, heard) < 0.15, heard
    # Cached by voice, server and model: the same text again is not sent to the server.
    stage([Translation(0, "x", text)], "en")
    assert stage.synthesized_count == 0
    other_model = _stage(f"{project_server.url}/v1", tmp_path, api_key=KEY, model="another-model")
    other_model([Translation(0, "x", text)], "en")
    assert other_model.synthesized_count == 1


def test_a_refused_key_and_an_unknown_voice_are_one_line_errors(project_server: Server, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"refused the API key \(settings tts.openai.api_key\)"):
        _stage(f"{project_server.url}/v1", tmp_path, api_key="wrong").voice_for("en")
    stage = _stage(f"{project_server.url}/v1", tmp_path, api_key=KEY)
    synth = stage.synthesizer("openai:piper:/etc/passwd")
    with pytest.raises(ModelError, match=r"refused voice 'piper:/etc/passwd' \(4\d\d\)") as err:
        synth.synthesize("hello")
    assert "\n" not in str(err.value)


def test_a_dead_server_is_a_clear_error_before_any_work(tmp_path: Path) -> None:
    from pipelines.runner import Pipeline
    from tests.conftest import make_video
    from tests.pipelines.test_runner import FakeASR, FakeTranslator

    dead = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"speech server http://127\.0\.0\.1:\d+/v1 is not reachable") as err:
        _stage(dead, tmp_path, check_timeout_s=1.0).voice_for("de")
    assert time.monotonic() - started < 5 and "\n" not in str(err.value)
    video = make_video(tmp_path / "clip.mp4", Path(__file__).parents[1] / "data" / "this_is_a_test.mp3", 3.0)
    settings = Settings(_env_file=None)
    settings.storage.cache_dir = tmp_path / "cache"
    settings.tts = TTSSettings(voices={"de": "openai:de"}, openai=OpenAISpeechSettings(base_url=dead))
    asr = FakeASR()
    with pytest.raises(BackendUnavailable, match="not reachable"):
        Pipeline(settings, asr=asr, translator=FakeTranslator()).run(
            JobRequest(input=str(video), target_languages=["de"]), tmp_path / "out"
        )
    assert asr.calls == 0  # nothing was transcribed
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pcm_answers_and_transient_errors_are_retried(tmp_path: Path) -> None:
    """A stand-in server: raw 16-bit PCM (OpenAI's ``pcm``) and one 503 before it answers."""
    spoken = EspeakSynthesizer("de").synthesize("Guten Morgen")
    pcm = (np.clip(spoken, -1, 1) * 32767).astype("<i2").tobytes()
    seen: list[dict[str, object]] = []
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict[str, object]:
        return {"data": []}

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        seen.append({"body": await request.json(), "auth": request.headers.get("authorization")})
        if len(seen) == 1:
            return Response('{"error": {"message": "busy"}}', status_code=503, media_type="application/json")
        return Response(pcm, media_type="audio/pcm")

    with Server(app) as server:
        stage = _stage(f"{server.url}/v1", tmp_path, response_format="pcm", pcm_sample_rate_hz=22050,
                       api_key="k", model="m1", max_retries=2)  # fmt: skip
        assert stage.voice_for("de") == "openai:de"
        samples = stage.synthesizer("openai:de").synthesize("Guten Morgen")
        assert stage.synthesizer("openai:de").sample_rate_hz == 22050
        np.testing.assert_allclose(samples, spoken, atol=1 / 16384)
        assert len(seen) == 2 and seen[1]["auth"] == "Bearer k"
        assert seen[1]["body"] == {"model": "m1", "voice": "de", "input": "Guten Morgen", "response_format": "pcm"}
        seen.clear()
        no_retry = _stage(f"{server.url}/v1", tmp_path, response_format="pcm", max_retries=0)
        with pytest.raises(BackendUnavailable, match="answered 503: busy"):
            no_retry.synthesizer("openai:de").synthesize("Guten Morgen")
