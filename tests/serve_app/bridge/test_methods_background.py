"""translate_video's ``background`` (issue 15) through the real RpcHandler, JobService and store: a dub over the
separated background without the separation model is a JSON-RPC error and records nothing; a bad value is -32602."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.serve_app.bridge.test_methods_inputs import rpc

__all__ = ["rpc"]  # the fixture: the real handler over a JobService in a temp folder


def test_separation_without_its_model_is_a_json_rpc_error(rpc: Any, jfk_flac: Path, tmp_path: Path) -> None:
    shutil.copy(jfk_flac, rpc.root / "inputs" / "talk.flac")
    rpc.service.default_background, rpc.service.models_dir = "duck", tmp_path / "no-models"  # nothing pulled there
    reply = rpc({"input": "inputs/talk.flac", "target_languages": ["ru"], "background": "separate"}, key="sep")
    error = reply["error"]
    assert -32099 <= error["code"] <= -32000 and error["data"]["error"]["code"] == "separation_unavailable"
    assert "models pull spleeter-2stems" in error["message"]
    assert rpc.service.list() == []
    bad = rpc({"input": "inputs/talk.flac", "target_languages": ["ru"], "background": "loud"}, key="bad")
    assert bad["error"]["code"] == -32602 and rpc.service.list() == []
    ok = rpc({"input": "inputs/talk.flac", "target_languages": ["ru"], "background": "none"}, key="ok")
    assert ok["result"]["state"] == "queued", ok
    assert rpc.service.get(ok["result"]["job_id"]).request.background == "none"
