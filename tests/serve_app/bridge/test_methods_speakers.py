"""translate_video's speaker params (issue 15): a bad count, a contradiction or an unknown per-speaker voice is
invalid params (-32602, nothing recorded); good ones reach the job's request. Through the real RpcHandler,
JobService (with the app's checks: models folder, diarize settings) and store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings
from tests.serve_app.bridge.test_methods_inputs import rpc

__all__ = ["rpc"]  # the fixture: the real handler over a JobService in a temp folder


@pytest.fixture
def talk(rpc: Any, jfk_flac: Path) -> str:
    shutil.copy(jfk_flac, rpc.root / "inputs" / "talk.flac")
    settings = Settings(_env_file=None)
    rpc.service.models_dir, rpc.service.diarize = settings.storage.models_dir, settings.diarize  # as the app wires it
    rpc.service.default_background = "none"
    return "inputs/talk.flac"


@pytest.mark.parametrize(
    ("params", "code", "match"),
    [
        ({"speakers": 0}, "invalid_params", "speakers"),
        ({"speakers": 500}, "invalid_params", "speakers"),
        ({"speakers": "two"}, "invalid_speakers", "speakers must be an integer"),
        ({"min_speakers": True}, "invalid_speakers", "min_speakers must be an integer"),
        ({"min_speakers": 5, "max_speakers": 2}, "invalid_speakers", "min_speakers (5) is more than max_speakers (2)"),
        ({"speakers": 4, "min_speakers": 5}, "invalid_speakers", "speakers=4 contradicts"),
        ({"speaker_voices": {"S2": "rhvoice:nobody"}}, "invalid_voice", "speaker S2: unknown voice"),
        ({"speaker_voices": {"S2": "espeak:en-us", "bob": "espeak:en-us"}}, "invalid_speakers", "S1..S20"),
        ({"speaker_voices": ["S2", "rhvoice:irina"]}, "invalid_voice", "speaker_voices must be an object"),
    ],
)
def test_bad_speaker_params_are_invalid_params(
    rpc: Any,
    talk: str,
    params: dict[str, Any],
    code: str,
    match: str,
) -> None:
    reply = rpc({"input": talk, "target_languages": ["ru"], **params}, key=f"bad{params}")
    error = reply["error"]
    assert error["code"] == -32602 and error["data"]["error"]["code"] == code, error
    assert match in error["message"]
    assert rpc.service.list() == []


def test_speaker_params_reach_the_request(rpc: Any, talk: str) -> None:
    params = {"input": talk, "target_languages": ["ru"], "speakers": 2, "speaker_voices": {"s2": "rhvoice:irina"}}
    request = rpc.service.get(rpc(params, key="ok")["result"]["job_id"]).request
    assert request.speakers == 2 and request.speaker_voices == {"S2": "rhvoice:irina"}
    bounds = {"input": talk, "target_languages": ["ru"], "min_speakers": 2, "max_speakers": 4, "background": "duck"}
    request = rpc.service.get(rpc(bounds, key="bounds")["result"]["job_id"]).request
    assert (request.speakers, request.min_speakers, request.max_speakers, request.background) == (None, 2, 4, "duck")
