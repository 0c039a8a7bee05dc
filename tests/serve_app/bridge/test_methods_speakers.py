"""translate_video's speaker params (issue 15): a bad count is invalid params (nothing recorded); good ones reach
the job's request. Through the real RpcHandler, JobService and store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.serve_app.bridge.test_methods_inputs import rpc  # noqa: F401  # the fixture

pytestmark = pytest.mark.usefixtures("rpc")


@pytest.mark.parametrize("speakers", [0, 500, "two"])
def test_a_bad_speaker_count_is_invalid_params(rpc: Any, speakers: Any, jfk_flac: Path) -> None:  # noqa: F811
    shutil.copy(jfk_flac, rpc.root / "inputs" / "talk.flac")
    reply = rpc({"input": "inputs/talk.flac", "target_languages": ["ru"], "speakers": speakers}, key=f"bad{speakers}")
    assert reply["error"]["code"] == -32602
    assert rpc.service.list() == []


def test_speaker_params_reach_the_request(rpc: Any, jfk_flac: Path) -> None:  # noqa: F811
    shutil.copy(jfk_flac, rpc.root / "inputs" / "talk.flac")
    params = {
        "input": "inputs/talk.flac",
        "target_languages": ["ru"],
        "speakers": 2,
        "speaker_voices": {"S2": "rhvoice:irina"},
    }
    reply = rpc(params, key="ok")
    request = rpc.service.get(reply["result"]["job_id"]).request
    assert request.speakers == 2 and request.speaker_voices == {"S2": "rhvoice:irina"}
