"""translate_video's ``background`` (issue 15) through the real RpcHandler, JobService and store: a dub over the
separated background without the separation model is a JSON-RPC error and records nothing; a bad value is -32602."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings
from pipelines.runner import Pipeline
from serve_app.bridge.methods import MethodContext, PipelineModels, build_methods
from serve_app.bridge.rpc import RpcHandler
from serve_app.jobs import JobService, LocalStorage, SQLiteJobStore


@pytest.fixture
def rpc(tmp_path: Path, jfk_flac: Path) -> Iterator[Any]:
    root = tmp_path / "shared"
    (root / "inputs").mkdir(parents=True)
    shutil.copy(jfk_flac, root / "inputs" / "talk.flac")
    store = SQLiteJobStore(tmp_path / "jobs.db")
    service = JobService(store, LocalStorage(root), max_queued_jobs=3)
    service.default_background, service.models_dir = "duck", tmp_path / "no-models"  # nothing pulled there
    ctx = MethodContext(service=service, models=PipelineModels(lambda: Pipeline(Settings(_env_file=None))), storage_root=root)
    handler = RpcHandler(build_methods(ctx))

    def call(params: dict[str, Any], key: str) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "method": "translate_video", "params": params, "id": 1}
        outcome = asyncio.run(handler.handle(json.dumps(body).encode(), key=f"amqp:{key}"))
        assert isinstance(outcome.reply, dict)
        return outcome.reply

    call.service = service  # type: ignore[attr-defined]
    yield call
    store.close()


def test_separation_without_its_model_is_a_json_rpc_error(rpc: Any) -> None:
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
