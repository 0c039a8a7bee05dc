"""Where a client meets voices (issue 14 item 5): GET /v1/voices, /v1/audio/speech with catalog ids, OpenAI names
and a language hint, and ``voices`` in POST /jobs and the upload form. The real TTS deployment (RHVoice, piper,
espeak-ng) behind the app's own local services; no job runs here (tests/web runs them)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from configs.settings import StorageSettings
from pipelines import voices
from serve_app.api.services import Services
from tests.serve_app.conftest import make_settings
from tests.serve_app.test_api import assert_envelope, upload

MODELS_DIR = StorageSettings().models_dir


@pytest.fixture(scope="module")
def ru_voices() -> list[str]:
    return voices.pull(MODELS_DIR, "ru")


@pytest.fixture(scope="module")
def real_client(tmp_path_factory: pytest.TempPathFactory, ru_voices: list[str]) -> Iterator[Any]:
    """The app over ``Services.local``: the real TTSDeployment (built on first use), no worker."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    services = Services.local(make_settings(tmp_path_factory.mktemp("voices") / "var"))
    with TestClient(
        get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
    ) as c:
        yield c
    services.jobs.store.close()


def _wav(response: Any) -> tuple[int, int]:
    """(sample rate, samples) of a WAV answer; asserts it is one, with sound in it."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav" and response.content[:4] == b"RIFF"
    samples, rate = sf.read(io.BytesIO(response.content))
    assert len(samples) > rate * 0.3
    return int(rate), len(samples)


def test_v1_voices_lists_the_catalog_with_defaults(real_client: Any) -> None:
    body = real_client.get("/v1/voices").json()
    assert body["status"] == "success" and body["object"] == "list" and body["message"].endswith("voice(s)")
    rows = {r["id"]: r for r in body["data"]}
    irina = rows["rhvoice:irina"]
    assert {k: irina[k] for k in ("object", "engine", "languages", "gender", "licence", "commercial_ok", "opt_in", "installed")} == {
        "object": "voice", "engine": "rhvoice", "languages": ["ru"], "gender": "female", "licence": "LGPL-2.1+",
        "commercial_ok": True, "opt_in": False, "installed": True,
    }  # fmt: skip
    assert {"cer", "speed_x", "default", "default_for", "source", "sample_rate_hz"} <= set(irina)
    default_ru = voices.default_voice("ru", MODELS_DIR)
    assert body["defaults"]["ru"] == default_ru and rows[default_ru]["default_for"] == ["ru"]
    assert body["defaults"]["en"] == "piper:bundled:en_US-joe-medium"  # the configured English voice
    assert not [v for v in rows if "artemiy" in v or "victoria" in v]  # non-commercial: never listed

    ru = real_client.get("/v1/voices", params={"language": "ru-RU"}).json()
    assert ru["data"] and all("ru" in r["languages"] for r in ru["data"])
    assert {"rhvoice:irina", "espeak:ru"} <= {r["id"] for r in ru["data"]} and ru["defaults"] == {"ru": default_ru}
    fi = real_client.get("/v1/voices?language=fi").json()  # no catalog voice: espeak-ng is the default
    assert fi["defaults"] == {"fi": "espeak:fi"} and [
        r["default_for"] for r in fi["data"] if r["id"] == "espeak:fi"
    ] == [["fi"]]
    assert_envelope(real_client.get("/v1/voices?language=xx"), 422, "unknown_language")
    assert "/v1/voices" in real_client.get("/openapi.json").json()["paths"]


def test_speech_takes_catalog_ids_openai_names_and_a_language_hint(real_client: Any) -> None:
    def say(**body: Any) -> Any:
        return real_client.post(
            "/v1/audio/speech", json={"input": "Привет, мир! Раз, два, три.", "response_format": "wav", **body}
        )

    assert _wav(say(voice="rhvoice:irina"))[0] == 24000
    assert _wav(say(voice="espeak:ru"))[0] == 22050
    rate_nova_ru, _ = _wav(say(voice="nova", language="ru"))  # an OpenAI name: the default voice of the language
    assert rate_nova_ru == 24000 and voices.default_voice("ru", MODELS_DIR).startswith("rhvoice:")
    english = real_client.post(
        "/v1/audio/speech", json={"input": "Hello there.", "voice": "alloy", "response_format": "wav"}
    )
    assert _wav(english)[0] == 22050  # no hint: the English voice (piper joe)
    for name in ("echo", "fable", "onyx", "shimmer"):
        assert (
            real_client.post("/v1/audio/speech", json={"input": "Hi.", "voice": name}).headers["content-type"]
            == "audio/mpeg"
        )
    assert _wav(say(voice="rhvoice:irina", language="ru"))[0] == 24000
    # Bad voices: 422 envelopes, never a 5xx.
    assert (
        "unknown voice 'rhvoice:artemiy'"
        in assert_envelope(say(voice="rhvoice:artemiy"), 422, "invalid_voice")["message"]
    )
    assert (
        "speaks ru, not 'es'"
        in assert_envelope(say(voice="rhvoice:irina", language="es"), 422, "invalid_voice")["message"]
    )
    assert_envelope(say(voice="piper:/etc/hostname"), 422, "invalid_voice")
    assert_envelope(say(voice="espeak:no-such-voice"), 422, "invalid_voice")
    assert_envelope(say(voice="nova", language="xx"), 422, "unknown_language")
    assert_envelope(say(voice="../etc/passwd"), 422, "invalid_voice")


def test_post_jobs_checks_voices_before_queueing(
    real_client: Any, tiny_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.pipelines.test_jobvoices import opt_in_voice

    opt_in = opt_in_voice(monkeypatch)
    listed = {v["id"]: v for v in real_client.get("/v1/voices?language=ru").json()["data"]}
    assert listed[opt_in]["opt_in"] is True and listed[opt_in]["installed"] is False and not listed[opt_in]["default"]
    file_id = upload(real_client, tiny_video).json()["data"]["file_id"]
    base = {"file_id": file_id, "target_languages": ["ru", "es"]}
    for bad, needle in (
        ({"ru": opt_in}, f"--opt-in {opt_in}"),
        ({"ru": "rhvoice:nobody"}, "unknown voice 'rhvoice:nobody'"),
        ({"es": "rhvoice:irina"}, "speaks ru, not 'es'"),
        ({"ru": "piper:/etc/hostname"}, "name a catalog voice"),
        ({"zz": "espeak:de"}, "unknown language code 'zz'"),
    ):
        body = assert_envelope(real_client.post("/jobs", json={**base, "voices": bad}), 422)
        assert body["error"]["code"] == "invalid_voice" and needle in body["message"], body
    assert real_client.get("/jobs").json()["data"]["jobs"] == []  # nothing queued
    ok = real_client.post("/jobs", json={**base, "voices": {"RU": "rhvoice:irina", "es": "espeak:es-419"}})
    assert ok.status_code == 202, ok.text
    assert ok.json()["data"]["voices"] == {"ru": "rhvoice:irina", "es": "espeak:es-419"}


def test_the_upload_form_takes_voices(real_client: Any, tiny_video: Path) -> None:
    before = len(real_client.get("/jobs").json()["data"]["jobs"])
    as_json = upload(real_client, tiny_video, "/jobs/upload", target_languages="ru", voices='{"ru": "rhvoice:anna"}')
    assert as_json.status_code == 202, as_json.text
    assert as_json.json()["data"]["voices"] == {"ru": "rhvoice:anna"}
    pairs = upload(
        real_client, tiny_video, "/jobs/upload", target_languages="ru,es", voices="ru=rhvoice:elena, es=espeak:es"
    )
    assert pairs.json()["data"]["voices"] == {"ru": "rhvoice:elena", "es": "espeak:es"}
    assert_envelope(upload(real_client, tiny_video, "/jobs/upload", target_languages="ru", voices="{nope"), 422)
    bad = upload(real_client, tiny_video, "/jobs/upload", target_languages="ru", voices="ru=rhvoice:nobody")
    assert_envelope(bad, 422, "invalid_voice")
    assert len(real_client.get("/jobs").json()["data"]["jobs"]) == before + 2  # the refused ones: no job
