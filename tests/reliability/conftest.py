"""Fixtures for the reliability tests: the bad-input corpus, fast fake model stages that honour the stage
protocols (they sit *above* the seam, so everything from HTTP to ffmpeg, the job store and the runner is real),
and ``get_application`` served in-process with a real ``JobWorker``."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from configs.settings import Settings
from pipelines.schema import Segment, Transcript, Translation, Word
from serve_app.api.services import Services
from serve_app.jobs import JobWorker
from tests.reliability import corpus
from tests.serve_app import conftest as base

SPEECH = "Ask not what your country can do for you. Ask what you can do for your country."
# What a hostile translation tries to smuggle into the subtitle files: a cue break, a timestamp, a second
# cue, markup and a VTT header. Subtitle writing must render it as text inside ONE cue.
INJECTION = "Hi\n\n2\n00:00:00,000 --> 00:59:59,000\n<script>alert(1)</script>{\\an8}WEBVTT\n\nNOTE x"


class ListeningASR:
    """A Recognizer that hears SPEECH in any non-silent audio (spread over its length) and nothing in silence
    or in audio shorter than 0.2 s, like Whisper with its VAD. Samples or a wav path in; no model."""

    name = "fake-listening-asr"

    def __init__(self) -> None:
        self.model = self
        self.calls = 0
        self.speech = SPEECH  # what it "hears"; a test may make it hear something hostile

    @staticmethod
    def _samples(audio: Any) -> np.ndarray:
        if isinstance(audio, np.ndarray):
            return audio.astype(np.float32)
        from pipelines.media import read_wav

        samples, _ = read_wav(audio)
        return samples if samples.ndim == 1 else samples.mean(axis=1)

    def __call__(self, audio: Any, *, language: str | None = None) -> Transcript:
        self.calls += 1
        samples = self._samples(audio)
        duration = len(samples) / 16000
        rms = float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0
        if duration < 0.2 or rms < 1e-3:
            return Transcript(language or "en", 0.0, duration, ())
        words = self.speech.split(" ")
        step = duration / len(words)
        timed = tuple(Word(i * step, (i + 0.8) * step, " " + w) for i, w in enumerate(words))
        return Transcript(language or "en", 0.97, duration, (Segment(0.0, timed[-1].end_s, self.speech, timed),))

    def transcribe(self, audio: Any, **kwargs: Any) -> tuple[Any, Any]:
        """The WhisperModel side (``/v1/audio/translations`` runs task="translate" through it)."""
        heard = self(audio, language=kwargs.get("language"))
        segments = [
            SimpleNamespace(start=s.start_s, end=s.end_s, text=s.text,
                            words=[SimpleNamespace(start=w.start_s, end=w.end_s, word=w.text, probability=0.9) for w in s.words])
            for s in heard.segments
        ]  # fmt: skip
        info = SimpleNamespace(language=heard.language, language_probability=0.97, duration=heard.duration_s)
        return iter(segments), info


class FakeTranslator(base.FakeTranslator):
    """Translates by tagging (``[ru] text``); with ``inject`` set, every line carries INJECTION."""

    def __init__(self) -> None:
        self.inject = False

    def translate(
        self, sentences: Sequence[Any], *, source_language: str, target_language: str, glossary: Any = None
    ) -> list[Translation]:
        lines = super().translate(sentences, source_language=source_language, target_language=target_language)
        extra = f" {INJECTION}" if self.inject else ""
        return [Translation(t.id, t.source, t.text + extra) for t in lines]


class FakeSynth(base.FakeSynth):
    seconds_per_char = 0.02
    amplitude = 0.2


class FakeTTS(base.FakeTTS):
    synth_cls = FakeSynth


def make_settings(root: Path, **service: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        storage={"root": str(root), "cache_dir": str(root / "cache")},
        service={
            "job_store_url": f"sqlite:///{root / 'jobs.db'}",
            "max_queued_jobs": 64,
            "retry_after_s": 3,
            **service,
        },
        LOG_DIR=str(root / "log"),
        MAX_FILE_SIZE=5 * 1024 * 1024,
    )


make_services = base.make_services  # one builder of the fake-backed Services, shared with tests/serve_app


def make_worker(services: Services, fakes: dict[str, Any]) -> JobWorker:
    from pipelines.runner import Pipeline

    def pipeline() -> Pipeline:
        return Pipeline(services.settings, asr=fakes["asr"], translator=fakes["translator"], tts=fakes["tts"])

    return JobWorker(services.jobs, pipeline, poll_s=0.02, min_update_s=0.05, cancel_check_s=0.05)


def wait_job(client: Any, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job is terminal; returns its data."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data: dict[str, Any] = client.get(f"/jobs/{job_id}").json()["data"]
        if data["state"] in {"succeeded", "failed", "cancelled"}:
            return data
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated corpus (name → path), built once per session."""
    return corpus.build(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def fakes() -> dict[str, Any]:
    return {"asr": ListeningASR(), "translator": FakeTranslator(), "tts": FakeTTS()}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "var")


@pytest.fixture
def services(settings: Settings, fakes: dict[str, Any]) -> Iterator[Services]:
    services = make_services(settings, fakes)
    yield services
    services.jobs.store.close()


@pytest.fixture
def client(services: Services, fakes: dict[str, Any]) -> Iterator[Any]:
    """get_application in-process (TestClient: the real ASGI stack) with a real JobWorker running."""
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    worker = make_worker(services, fakes)
    worker.start()
    try:
        with TestClient(
            get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
        ) as c:
            yield c
    finally:
        worker.stop(timeout=30)
