"""The bridge's models over a real Pipeline (fake ASR): transcription goes through the runner's stage cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs.settings import Settings
from pipelines.errors import NoAudioStream
from pipelines.runner import Pipeline
from serve_app.bridge.methods import PipelineModels
from tests.conftest import make_video
from tests.pipelines.test_runner import FakeASR


def test_transcribe_uses_the_runner_and_its_cache(tmp_path: Path, test_mp3: Path) -> None:
    settings = Settings(_env_file=None)
    settings.storage.cache_dir = tmp_path / "cache"
    asr = FakeASR()
    models = PipelineModels(lambda: Pipeline(settings, asr=asr))
    video = make_video(tmp_path / "clip.mp4", test_mp3, 6.0)
    first = models.transcribe(video, None)
    assert first.language == "en" and len(first.segments) == 2
    assert models.transcribe(video, None) == first and asr.calls == 1  # the second call is a cache hit
    with pytest.raises(NoAudioStream):
        models.transcribe(make_video(tmp_path / "silent.mp4", None, 1.0), None)


def test_media_longer_than_max_duration_is_a_json_rpc_error(tmp_path: Path, test_mp3: Path) -> None:
    """MAX_DURATION through the bridge's ``transcribe`` (the runner's probe check): a domain error reply with
    the envelope, not a poison message."""
    import asyncio
    import json

    from serve_app.bridge.methods import MethodContext, build_methods
    from serve_app.bridge.rpc import RpcHandler
    from serve_app.jobs import JobService, LocalStorage, SQLiteJobStore

    settings = Settings(_env_file=None, MAX_DURATION=5.0)  # type: ignore[call-arg]
    settings.storage.cache_dir = tmp_path / "cache"
    root = tmp_path / "shared"
    root.mkdir()
    (root / "inputs").mkdir()
    make_video(root / "inputs" / "clip.mp4", test_mp3, 6.0)
    store = SQLiteJobStore(tmp_path / "jobs.db")
    try:
        models = PipelineModels(lambda: Pipeline(settings, asr=FakeASR()))
        ctx = MethodContext(
            service=JobService(store, LocalStorage(root), max_queued_jobs=3), models=models, storage_root=root
        )
        body = {"jsonrpc": "2.0", "method": "transcribe", "params": {"input": "inputs/clip.mp4"}, "id": 1}
        outcome = asyncio.run(RpcHandler(build_methods(ctx)).handle(json.dumps(body).encode(), key="amqp:m1"))
    finally:
        store.close()
    assert outcome.poison is None and isinstance(outcome.reply, dict)
    error = outcome.reply["error"]
    assert -32099 <= error["code"] <= -32000 and "lasts 0:00:06" in error["message"]
    assert error["data"]["error"]["code"] == "media_too_long" and str(root) not in error["message"]
