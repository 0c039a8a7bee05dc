"""Overlap inside one job (settings pipeline.overlap): the same outputs as the run in turn, sooner.

Above the seams: a streaming fake ASR and the real LLMTranslator over a fake backend (tests/pipelines/
test_translate.py), real ffmpeg underneath. The real models (Whisper base, the bundled LLM, the TTS) are
in test_runner_overlap_real.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings
from pipelines.errors import BackendUnavailable, JobCancelled, ModelError, TranslationFailed
from pipelines.runner import JobResult, Pipeline
from pipelines.schema import JobRequest, Segment, Transcript, Word
from pipelines.translate import LLMTranslator
from tests.pipelines.test_runner import FakeTTS
from tests.pipelines.test_translate import FakeBackend

SAID = ["Alice went home at {}.", "Bob reads a book at {}.", "We walk in the park at {}."]


def speech(count: int, span_s: float = 5.6) -> list[Segment]:
    """``count`` one-sentence segments spread over ``span_s`` seconds."""
    step = span_s / count
    out = []
    for i in range(count):
        text = SAID[i % len(SAID)].format(i)
        start = 0.2 + i * step
        tokens = text.split()
        dur = step * 0.8 / len(tokens)
        words = tuple(
            Word(round(start + k * dur, 3), round(start + (k + 1) * dur, 3), " " + w) for k, w in enumerate(tokens)
        )
        out.append(Segment(words[0].start_s, words[-1].end_s, text, words))
    return out


class StreamingASR:
    """Honours WhisperASR's ``__call__`` and ``stream``; ``fail_at``: raise ModelError before that segment."""

    name = "fake-streaming-asr"

    def __init__(self, segments: list[Segment], *, delay_s: float = 0.0, fail_at: int | None = None) -> None:
        self.segments, self.delay_s, self.fail_at = segments, delay_s, fail_at
        self.calls = self.streams = 0
        self.given = 0  # segments handed out
        self.closed = False

    def __call__(self, audio: object, *, language: str | None = None) -> Transcript:
        self.calls += 1
        self.given = len(self.segments)
        return Transcript("en", 0.99, 6.0, tuple(self.segments))

    def stream(self, audio: object, *, language: str | None = None) -> tuple[dict[str, Any], Iterator[Segment]]:
        self.streams += 1
        return {"language": "en", "language_probability": 0.99, "duration_s": 6.0}, self._segments()

    def _segments(self) -> Iterator[Segment]:
        try:
            for i, seg in enumerate(self.segments):
                if i == self.fail_at:
                    raise ModelError("the ASR model failed mid-stream")
                time.sleep(self.delay_s)
                self.given += 1
                yield seg
        finally:
            self.closed = True


class WatchedBackend(FakeBackend):
    """Records, at each request, how many segments ASR had given and how many lines TTS had spoken."""

    def __init__(self, asr: StreamingASR, tts: FakeTTS, *, fail: Exception | None = None) -> None:
        super().__init__()
        self.asr, self.tts, self.fail = asr, tts, fail
        self.seen: list[tuple[int, int]] = []

    def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        self.seen.append((self.asr.given, self.tts.total))
        if self.fail is not None:
            raise self.fail
        time.sleep(0.02)  # an LLM takes a while: the TTS can catch up
        return super().complete(messages, **kwargs)


def make(
    tmp_path: Path,
    *,
    overlap: bool = True,
    count: int = 24,
    fail_asr_at: int | None = None,
    fail: Exception | None = None,
) -> tuple[Pipeline, StreamingASR, WatchedBackend, FakeTTS]:
    s = Settings(_env_file=None)
    s.storage.cache_dir = tmp_path / "cache"
    s.pipeline.overlap = overlap
    s.pipeline.queue_size = 2
    s.mix.background = "duck"  # separation is its own step, before the targets; these tests are about the overlap
    s.diarize.enabled = False  # speakers split sentences: with diarization on, ASR does not stream (a test below)
    s.translator.batch_size, s.translator.context_sentences, s.translator.name_glossary = 4, 2, False
    asr, tts = StreamingASR(speech(count), delay_s=0.01, fail_at=fail_asr_at), FakeTTS()
    backend = WatchedBackend(asr, tts, fail=fail)
    return Pipeline(s, asr=asr, translator=LLMTranslator(s.translator, backend), tts=tts), asr, backend, tts


def comparable(result: JobResult) -> dict[str, Any]:
    """The report without what differs between two runs anyway (when, how long, where)."""
    return {k: v for k, v in result.report.items() if k not in {"created_at", "timings_s", "rtf", "input"}}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, test_mp3: Path) -> Path:
    from tests.conftest import make_video

    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", test_mp3, 6.0)


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vt-")]


@pytest.mark.parametrize("mode", ["dub", "subtitles"])
def test_the_overlapped_run_equals_the_run_in_turn(video: Path, tmp_path: Path, mode: str) -> None:
    request = JobRequest(input=str(video), target_languages=["ru", "es"], mode=mode)
    results, backends = {}, {}
    for overlap in (False, True):
        pipe, asr, backends[overlap], _ = make(tmp_path / str(overlap), overlap=overlap)
        seen: list[tuple[str, float, str | None]] = []
        out = tmp_path / f"out-{overlap}"
        results[overlap] = pipe.run(request, out, progress=lambda *e: seen.append(e))  # noqa: B023
        assert (asr.streams, asr.calls) == ((1, 0) if overlap else (0, 1))
        starts = [(stage, lang) for stage, f, lang in seen if f == 0.0]
        dubbed = mode == "dub"
        assert starts == [
            ("extract", None), ("asr", None), ("segment", None),
            ("translate", "ru"), *([("tts", "ru")] if dubbed else []), ("mux", "ru"),
            ("translate", "es"), *([("tts", "es")] if dubbed else []), ("mux", "es"),
        ]  # fmt: skip
    assert comparable(results[True]) == comparable(results[False])
    assert results[True].report["sentence_count"] == 24
    assert backends[True].messages == backends[False].messages  # the same requests, in the same order
    for name in ("clip.ru.srt", "clip.es.vtt", "clip.en.srt"):
        assert (tmp_path / "out-True" / name).read_bytes() == (tmp_path / "out-False" / name).read_bytes()
    # and it did overlap: ru's first request went out while ASR was still going; es's lines were spoken while
    # es was still being translated (TTS runs ahead of the last requests)
    seen = backends[True].seen
    assert seen[0][0] < 24
    if mode == "dub":
        ru_spoken = 24
        assert any(spoken > ru_spoken for _, spoken in seen)  # es lines spoken before es's last request
    assert backends[False].seen[0][0] == 24
    assert not _threads()


def test_a_cached_rerun_does_no_work(video: Path, tmp_path: Path) -> None:
    pipe, asr, backend, _ = make(tmp_path)
    request = JobRequest(input=str(video), target_languages=["ru"])
    first = pipe.run(request, tmp_path / "out1")
    requests, streams = len(backend.messages), asr.streams
    again = pipe.run(request, tmp_path / "out2")
    assert (len(backend.messages), asr.streams, asr.calls) == (requests, streams, 0)
    assert {"asr", "translate"} <= set(again.report["cache_hits"])
    assert comparable(again) | {"cache_hits": []} == comparable(first) | {"cache_hits": []}
    # a crash after ASR resumes from its cache: only the translation runs again
    for f in (tmp_path / "cache").rglob("translate.*.json"):
        f.unlink()
    pipe.run(request, tmp_path / "out3")
    assert asr.streams == streams and len(backend.messages) == 2 * requests


def test_an_asr_error_mid_stream_stops_the_job_and_writes_nothing(video: Path, tmp_path: Path) -> None:
    pipe, asr, backend, _ = make(tmp_path, fail_asr_at=15)
    with pytest.raises(ModelError, match="mid-stream"):
        pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out")
    assert backend.messages  # translation had started
    assert asr.closed and not _threads()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert not list((tmp_path / "cache").rglob("asr.*.json")) and not list((tmp_path / "cache").rglob("translate.*"))


def test_a_translator_error_stops_asr_and_surfaces_as_before(video: Path, tmp_path: Path) -> None:
    pipe, asr, backend, tts = make(tmp_path, count=60, fail=BackendUnavailable("llama server gone"))
    pipe.settings.translator.batch_size = 2
    with pytest.raises(TranslationFailed, match="unavailable"):
        pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out")
    assert len(backend.seen) == 1 and asr.closed and asr.given < 60  # ASR stopped early
    assert tts.total == 0 and not _threads()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_cancel_mid_job_stops_every_stage(video: Path, tmp_path: Path) -> None:
    pipe, asr, backend, _ = make(tmp_path, count=60)
    with pytest.raises(JobCancelled):
        pipe.run(
            JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out",
            should_cancel=lambda: len(backend.messages) >= 2,
        )  # fmt: skip
    # the bounded queues hold ASR and translation back while the job notices: far from all 15 batches, 60 sentences
    assert 2 <= len(backend.messages) < 10 and asr.given < 60 and asr.closed and not _threads()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_overlap_is_a_setting_read_from_the_environment(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(_env_file=None).pipeline.overlap is False  # the default, until measured no slower
    monkeypatch.setenv("VT_PIPELINE__OVERLAP", "true")
    assert Settings(_env_file=None).pipeline.overlap is True
    monkeypatch.setenv("VT_PIPELINE__OVERLAP", "false")
    assert Settings(_env_file=None).pipeline.overlap is False
    pipe, asr, backend, _ = make(tmp_path, overlap=False)
    pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out")
    assert (asr.streams, asr.calls) == (0, 1) and backend.seen[0][0] == len(asr.segments)


def test_no_speech_loads_no_translator(video: Path, tmp_path: Path) -> None:
    s = Settings(_env_file=None)
    s.storage.cache_dir = tmp_path / "cache"
    s.pipeline.overlap, s.diarize.enabled = True, False
    asr = StreamingASR([])
    pipe = Pipeline(s, asr=asr, tts=FakeTTS())
    result = pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out")
    assert asr.streams == 1 and pipe._translator is None and result.report["sentence_count"] == 0
    assert json.loads((tmp_path / "out" / "clip.report.json").read_text())["models"]["translator"] is None


def test_stages_that_cannot_stream_run_in_turn_under_overlap(video: Path, tmp_path: Path) -> None:
    """Serve's handle adapters have no ``stream``/``translate_stream``: the job runs as before, with overlap on."""
    from tests.pipelines.test_runner import FakeASR, FakeTranslator

    results = {}
    for overlap in (False, True):
        s = Settings(_env_file=None)
        s.storage.cache_dir = tmp_path / f"cache-{overlap}"
        s.pipeline.overlap = overlap
        s.mix.background, s.diarize.enabled = "duck", False
        asr, tr = FakeASR(), FakeTranslator()
        seen: list[tuple[str, float, str | None]] = []
        pipe = Pipeline(s, asr=asr, translator=tr, tts=FakeTTS())
        request, out = JobRequest(input=str(video), target_languages=["ru"]), tmp_path / f"out-{overlap}"
        results[overlap] = pipe.run(request, out, progress=lambda *e: seen.append(e))  # noqa: B023
        assert (asr.calls, tr.calls) == (1, 1)
        assert [stage for stage, f, _ in seen if f == 0.0] == ["extract", "asr", "segment", "translate", "tts", "mux"]
    assert comparable(results[True]) == comparable(results[False])


def test_with_diarization_on_asr_does_not_stream(video: Path, tmp_path: Path) -> None:
    """Speakers split sentences, so the segmenter needs the whole diarized transcript: overlap then starts after it."""
    pipe, asr, _, _ = make(tmp_path, overlap=True)
    pipe.settings.diarize.enabled = True
    pipe.run(JobRequest(input=str(video), target_languages=["ru"]), tmp_path / "out")
    assert (asr.streams, asr.calls) == (0, 1)
