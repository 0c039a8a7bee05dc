"""translate_video's other inputs (issue 18): ``url`` (refusals are JSON-RPC errors, nothing recorded) and
``source_subtitles`` (a file in the shared input folder), through the real RpcHandler, JobService and store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings
from pipelines.runner import Pipeline
from serve_app.bridge.methods import MethodContext, PipelineModels, build_methods
from serve_app.bridge.rpc import RpcHandler
from serve_app.jobs import JobService, LocalStorage, SQLiteJobStore


@pytest.fixture
def rpc(tmp_path: Path) -> Any:
    root = tmp_path / "shared"
    (root / "inputs").mkdir(parents=True)
    store = SQLiteJobStore(tmp_path / "jobs.db")
    service = JobService(store, LocalStorage(root), max_queued_jobs=3)
    service.url_allow_hosts = ["127.0.0.1"]
    ctx = MethodContext(service=service, models=PipelineModels(lambda: Pipeline(Settings(_env_file=None))), storage_root=root)
    handler = RpcHandler(build_methods(ctx))

    def call(params: dict[str, Any], key: str) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "method": "translate_video", "params": params, "id": 1}
        outcome = asyncio.run(handler.handle(json.dumps(body).encode(), key=f"amqp:{key}"))
        assert isinstance(outcome.reply, dict)
        # a domain error is a reply; bad params (-32602) also dead-letter the message, as for every method
        assert outcome.poison is None or outcome.poison_code == -32602
        return outcome.reply

    call.service, call.root = service, root  # type: ignore[attr-defined]
    yield call
    store.close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/a.mp4", "http://169.254.169.254/", "http://10.0.0.1/a"])
def test_refused_urls_are_json_rpc_errors(rpc: Any, url: str) -> None:
    reply = rpc({"url": url, "target_languages": ["ru"]}, key=url)
    error = reply["error"]
    assert -32099 <= error["code"] <= -32000 and error["data"]["error"]["code"] == "url_refused"
    assert rpc.service.list() == []


def test_a_url_and_source_subtitles_are_queued(rpc: Any, media_server: Any) -> None:
    (rpc.root / "inputs" / "talk.en.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHi.\n", encoding="utf-8")
    url = media_server.url("/talk.mp4")
    reply = rpc({"url": url, "target_languages": ["ru"], "source_subtitles": "inputs/talk.en.srt"}, key="ok")
    assert reply["result"]["state"] == "queued", reply
    request = rpc.service.get(reply["result"]["job_id"]).request
    assert request.input == url and request.source_subtitles == str((rpc.root / "inputs" / "talk.en.srt").resolve())
    both = rpc({"url": url, "input": "inputs/talk.en.srt", "target_languages": ["ru"]}, key="both")
    assert both["error"]["code"] == -32602
    outside = rpc({"url": url, "target_languages": ["ru"], "source_subtitles": "/etc/passwd"}, key="outside")
    assert outside["error"]["data"]["error"]["code"] == "input_not_allowed"
