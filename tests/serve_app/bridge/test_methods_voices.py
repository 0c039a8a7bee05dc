"""``voices`` in the ``translate_video`` params (issue 14): carried in the one JobRequest, checked before the job is
recorded (a JSON-RPC invalid-params error with the envelope), and carried by queue-mode POST /jobs into the
message it publishes (the real RabbitMQ and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings, StorageSettings
from pipelines import voices
from serve_app.bridge.rpc import RpcHandler
from serve_app.jobs import JobService
from tests.serve_app.bridge.test_queue_mode import queued_messages, settings, tiny_video  # noqa: F401 (fixtures)
from tests.serve_app.bridge.test_rpc import call, handler, root, service, video  # noqa: F401 (fixtures)
from tests.serve_app.conftest import make_services

MODELS_DIR = StorageSettings().models_dir


@pytest.fixture(scope="module", autouse=True)
def ru_voices() -> list[str]:
    return voices.pull(MODELS_DIR, "ru")


def test_translate_video_takes_voices(handler: RpcHandler, service: JobService) -> None:  # noqa: F811
    service.models_dir = MODELS_DIR  # as build_job_service wires it
    reply = call(handler, video(voices={"RU": "rhvoice:irina", "es": "espeak:es-419"}), key="amqp:v1").reply
    assert isinstance(reply, dict) and "result" in reply, reply
    assert service.get(reply["result"]["job_id"]).request.voices == {"ru": "rhvoice:irina", "es": "espeak:es-419"}


@pytest.mark.parametrize(
    ("voices_param", "needle"),
    [
        ({"ru": "rhvoice:artemiy"}, "unknown voice 'rhvoice:artemiy'"),
        ({"es": "rhvoice:irina"}, "speaks ru, not 'es'"),
        ({"ru": "piper:/etc/hostname"}, "name a catalog voice"),
        ({"ru": 1}, "voices must be an object of strings"),
        (["ru=rhvoice:irina"], "voices must be an object of strings"),
    ],
)
def test_a_bad_voice_is_an_invalid_params_error_and_no_job(
    handler: RpcHandler,  # noqa: F811
    service: JobService,  # noqa: F811
    voices_param: Any,
    needle: str,
) -> None:
    service.models_dir = MODELS_DIR
    reply = call(handler, video(voices=voices_param), key="amqp:v2").reply
    assert isinstance(reply, dict) and "error" in reply, reply
    error = reply["error"]
    assert error["code"] == -32602 and needle in error["message"], error
    assert error["data"]["status"] == "error" and error["data"]["error"]["code"] == "invalid_voice"
    assert service.list() == []


def test_a_voice_not_installed_is_refused(handler: RpcHandler, service: JobService, tmp_path: Path) -> None:  # noqa: F811
    service.models_dir = tmp_path / "no-models"
    reply = call(handler, video(voices={"ru": "rhvoice:irina"}), key="amqp:v3").reply
    assert isinstance(reply, dict) and reply["error"]["code"] == -32602
    assert "not installed; run `videotranslator voices pull --lang ru`" in reply["error"]["message"]
    assert service.list() == []


@pytest.mark.rabbitmq
def test_queue_mode_post_jobs_publishes_the_voices(settings: Settings, tiny_video: Path) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application
    from tests.serve_app.conftest import FakeASR, FakeTranslator, FakeTTS

    services = make_services(settings, {"asr": FakeASR(), "translator": FakeTranslator(), "tts": FakeTTS()})
    with TestClient(
        get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
    ) as client:
        with open(tiny_video, "rb") as fh:
            file_id = client.post("/files/upload", files={"file": ("talk.mp4", fh, "video/mp4")}).json()["data"][
                "file_id"
            ]
        body = {"file_id": file_id, "target_languages": ["ru"], "voices": {"ru": "rhvoice:nobody"}}
        bad = client.post("/jobs", json=body)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_voice", bad.text
        good = client.post("/jobs", json={**body, "voices": {"ru-RU": "rhvoice:anna"}})
        assert good.status_code == 202, good.text
        assert good.json()["data"]["voices"] == {"ru": "rhvoice:anna"}
    [message] = queued_messages(settings)  # the refused job published nothing
    params = json.loads(message.body)["params"]
    assert params["voices"] == {"ru": "rhvoice:anna"}
    services.jobs.store.close()
