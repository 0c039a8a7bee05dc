"""Fixtures for the service tests: settings in a temp folder, fake stages behind the REAL deployment
classes, an in-process FastAPI client (no Ray), and ONE Ray cluster per test session for the Serve tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from configs.settings import Settings, TTSSettings
from pipelines.schema import Clip, Segment, Transcript, Translation, Word
from pipelines.translate import LLMTranslator
from serve_app.api.services import DeploymentClient, Services
from serve_app.deployments import ASRDeployment, TranslatorDeployment, TTSDeployment
from serve_app.jobs.wiring import build_job_service

FAKE_TEXT = "And so my fellow Americans, ask not what your country can do for you."


class FakeASR:
    """A Recognizer that always hears FAKE_TEXT (and records what it got)."""

    name = "fake-asr"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, str | None]] = []
        self.model = self  # lets ASRDeployment build its translate stage over this fake "model"

    def __call__(self, audio: Any, *, language: str | None = None) -> Transcript:
        self.calls.append((audio, language))
        words = tuple(Word(i * 0.5, i * 0.5 + 0.4, " " + w) for i, w in enumerate(FAKE_TEXT.split()))
        return Transcript(language or "en", 0.99, 11.0, (Segment(0.0, words[-1].end_s, FAKE_TEXT, words),))

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:  # the WhisperModel side, for task="translate"
        raise AssertionError("not used by these tests")


class FakeTranslator:
    name = "fake-translator"

    def translate(
        self, sentences: Sequence[Any], *, source_language: str, target_language: str, glossary: Any = None
    ) -> list[Translation]:
        return [Translation(s.id, s.text, f"[{target_language}] {s.text}") for s in sentences]

    # The real plain-strings call, over this fake's ``translate`` (it is what TranslatorDeployment calls).
    translate_texts = LLMTranslator.translate_texts


class FakeSynth:
    """A 220 Hz tone, ``seconds_per_char`` long per character of text."""

    name = "fake"
    sample_rate_hz = 16000
    seconds_per_char = 0.05
    amplitude = 0.3

    def synthesize(self, text: str) -> np.ndarray:
        t = np.arange(int(self.seconds_per_char * len(text) * self.sample_rate_hz)) / self.sample_rate_hz
        return (self.amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


class FakeTTS:
    def __init__(self) -> None:
        self.settings = TTSSettings(voices={"en": "piper:bundled:en_US-joe-medium"})
        self.synthesized_count = 0

    def voice_for(self, language: str) -> str:
        return self.settings.voices.get(language, f"espeak:{language}")

    synth_cls: type[FakeSynth] = FakeSynth

    def synthesizer(self, voice: str) -> FakeSynth:
        return self.synth_cls()

    def __call__(self, translations: Sequence[Translation], language: str, voice: str | None = None) -> list[Clip]:
        self.synthesized_count = len(translations)
        return [Clip(t.id, self.synth_cls().synthesize(t.text), 16000) for t in translations]


def make_settings(root: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "storage": {"root": str(root), "cache_dir": str(root / "cache")},
        "service": {"job_store_url": f"sqlite:///{root / 'jobs.db'}", "max_queued_jobs": 4, "retry_after_s": 7},
        "LOG_DIR": str(root / "log"),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "var")


@pytest.fixture
def fakes() -> dict[str, Any]:
    return {"asr": FakeASR(), "translator": FakeTranslator(), "tts": FakeTTS()}


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory: pytest.TempPathFactory, jfk_flac: Path) -> Path:
    """A 3 s video of speech, 64x48."""
    from tests.conftest import make_video

    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", jfk_flac, 3.0, size="64x48")


def make_services(settings: Settings, fakes: dict[str, Any]) -> Services:
    """The app's own job-service wiring (``build_job_service``) with ``fakes`` (asr, translator, tts) behind
    the real deployment classes. Close ``services.jobs.store`` when done."""
    jobs = build_job_service(settings)
    return Services(
        settings=settings,
        jobs=jobs,
        storage=jobs.storage,
        asr=DeploymentClient(ASRDeployment(settings, stage=fakes["asr"])),
        translator=DeploymentClient(TranslatorDeployment(settings, stage=fakes["translator"])),
        tts=DeploymentClient(TTSDeployment(settings, stage=fakes["tts"])),
    )


@pytest.fixture
def services(settings: Settings, fakes: dict[str, Any]) -> Iterator[Services]:
    services = make_services(settings, fakes)
    yield services
    services.jobs.store.close()


@pytest.fixture
def client(services: Services) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from serve_app.api.main import get_application

    with TestClient(
        get_application(services=services), raise_server_exceptions=False, base_url="http://localhost"
    ) as c:
        yield c


# ----------------------------------------------------------------------------- Ray


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free, else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def wait_job(http: Any, job_id: str, timeout_s: float) -> dict[str, Any]:
    """GET /jobs/{job_id} through ``http`` (an httpx.Client) until the job has ended or ``timeout_s`` passed."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()["data"]
        if job["state"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.5)
class Server:
    """uvicorn in a daemon thread; ``url`` once it is accepting connections."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


# ``ray_cluster`` (ONE Ray cluster per test session) lives in tests/conftest.py, shared with tests/reliability.
