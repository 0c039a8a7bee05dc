"""A dub job whose line overflows its slot, on Ray Serve: the runner asks the translator for a shorter line
through the real handle adapter and the real TranslatorDeployment (the stages under them are fakes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.schema import JobRequest, Translation
from serve_app.app import deployment_options
from serve_app.jobs import JobState
from tests.serve_app.conftest import FakeASR, FakeTranslator, FakeTTS
from tests.serve_app.test_app import profile_args

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SHORT = "Kurz gesagt."


class LongFirstTranslator(FakeTranslator):
    """Its first rendering takes ~40 s to speak (the 13 s video has no room for it); ``shorten`` fixes that."""

    def translate(self, sentences: Any, **kwargs: Any) -> list[Translation]:
        return [Translation(s.id, s.text, "Sehr lange Zeile " * 50) for s in sentences]

    def shorten(self, text: str, *, target_language: str, max_chars: int) -> str | None:
        assert target_language == "de" and 0 < max_chars < len(text)
        return SHORT


def test_serve_dub_job_shortens_an_overflowing_line(ray_cluster: None, jfk_video: Path, tmp_path: Path) -> None:
    from ray import serve

    from serve_app.app import ServeJobRunner
    from serve_app.deployments import ASRDeployment, TranslatorDeployment, TTSDeployment
    from serve_app.jobs.wiring import build_job_service
    from tests.serve_app.conftest import make_settings

    settings = make_settings(tmp_path / "var")
    args = profile_args("serve.cpu.yaml")
    plain = settings.model_dump(mode="json")

    def wrap(cls: type, key: str, name: str) -> Any:
        return serve.deployment(cls, **{**deployment_options(args, key), "name": name})

    asr = wrap(ASRDeployment, "asr", "ASRDeployment").bind(plain, stage=FakeASR())
    translator = wrap(TranslatorDeployment, "translator", "TranslatorDeployment").bind(
        plain, stage=LongFirstTranslator()
    )
    tts = wrap(TTSDeployment, "tts", "TTSDeployment").bind(plain, stage=FakeTTS())
    runner = wrap(ServeJobRunner, "job_runner", "JobRunner").bind(plain, asr, translator, tts)
    service = build_job_service(settings)
    serve.run(runner, name="shorten", route_prefix=None)
    try:
        record = service.submit(JobRequest(input=str(jfk_video), target_languages=["de"], mode="dub"))
        deadline = time.monotonic() + 180
        while not (done := service.get(record.id)).terminal:
            assert time.monotonic() < deadline, done
            time.sleep(0.2)
        assert done.state is JobState.SUCCEEDED, done.error
        assert {"jfk.de.mp4", "jfk.de.srt"} <= set(done.outputs)
        srt = service.storage.output_path(record.id, "jfk.de.srt").read_text()
        assert SHORT in srt and "Sehr lange" not in srt  # the shortened line is the one spoken and shown
    finally:
        serve.delete("shorten")
        service.store.close()
