"""A job worker process that SIGKILLs itself at a chosen point of publishing a re-dub (for
``test_redub_crash.py``), and the small fake stages it and the test share.

``python -m tests.serve_app.jobs.redub_crash ROOT K`` opens the store and storage under ROOT, claims the
queued re-dub with a real ``JobWorker`` and the real runner over fake stages, and, once the re-dub's
``Pipeline.run`` has returned, kills itself right AFTER its K-th file-system change (``os.replace``,
``os.rename``, ``os.symlink``, ``os.link``); K = 0: as soon as ``Pipeline.run`` returns. No hook in the code
under test: the kill points are wherever the publishing code touches the file system. Exit 0: the re-dub
finished before the K-th change.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from configs.settings import Settings
from pipelines.schema import Clip, Segment, Transcript, Translation, Word

SENTENCES = ("Ask not what your country can do for you.", "Ask what you can do for your country.")


class TwoSentenceASR:
    """Hears SENTENCES (about 3 s), whatever the audio (also ``test_segments.py``'s ASR)."""

    name = "fake-asr-2"

    def __call__(self, audio: Any, *, language: str | None = None) -> Transcript:
        segments = []
        t = 0.0
        for text in SENTENCES:
            words = []
            for w in text.split():
                words.append(Word(t, t + 0.12, " " + w))
                t += 0.15
            segments.append(Segment(words[0].start_s, words[-1].end_s, text, tuple(words)))
            t += 0.2
        return Transcript(language or "en", 0.99, 3.0, tuple(segments))


class TagTranslator:
    name = "tag"

    def translate(
        self, sentences: Sequence[Any], *, source_language: str, target_language: str, glossary: Any = None
    ) -> list[Translation]:
        return [Translation(s.id, s.text, f"[{target_language}] {s.text}") for s in sentences]


class ToneTTS:
    """A tone whose pitch follows the text, so another line gives another dub track."""

    synthesized_count = 0

    def voice_for(self, language: str) -> str:
        return f"espeak:{language}"

    def __call__(self, translations: Sequence[Translation], language: str, voice: str | None = None) -> list[Clip]:
        self.synthesized_count = len(translations)
        t = np.arange(4000) / 16000
        return [
            Clip(x.id, (0.3 * np.sin(2 * np.pi * (200 + len(x.text) * 5) * t)).astype(np.float32), 16000)
            for x in translations
        ]


def settings_for(root: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        storage={"root": str(root), "cache_dir": str(root / "cache")},
        service={"job_store_url": f"sqlite:///{root / 'jobs.db'}"},
        LOG_DIR=str(root / "log"),
    )


def pipeline_for(settings: Settings) -> Any:
    from pipelines.runner import Pipeline

    return Pipeline(settings, asr=TwoSentenceASR(), translator=TagTranslator(), tts=ToneTTS())


def _kill_after(k: int) -> None:
    """Arm the kill: after the k-th file-system change from now on (k = 0: now)."""
    if k == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    count = 0

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            result = fn(*args, **kwargs)
            count += 1
            if count == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return call

    for name in ("replace", "rename", "symlink", "link"):
        setattr(os, name, wrap(getattr(os, name)))


def main(root: Path, k: int) -> None:
    from pipelines.runner import Pipeline
    from serve_app.jobs.wiring import build_job_service
    from serve_app.jobs.worker import JobWorker

    run = Pipeline.run

    def run_then_arm(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        result = run(self, *args, **kwargs)
        _kill_after(k)
        return result

    Pipeline.run = run_then_arm  # type: ignore[method-assign]
    settings = settings_for(root)
    service = build_job_service(settings)
    assert JobWorker(service, lambda: pipeline_for(settings), worker_id="doomed").run_once()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
