"""Chunking at VAD boundaries and regrouping chunk transcripts (pure), plus a long real input."""

from __future__ import annotations

import itertools
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipelines.batch import chunking
from pipelines.batch.chunking import Chunk, Span, merge_transcripts, plan_chunks
from pipelines.schema import Segment, Transcript, Word

DATA = Path(__file__).resolve().parents[2] / "data"


def test_short_audio_is_one_chunk_padded_inside_the_file() -> None:
    chunks = plan_chunks([Span(0.5, 3.0), Span(4.0, 6.0)], total_s=7.0, max_s=30.0, pad_s=1.0)
    assert chunks == [Chunk(0, 0.0, 7.0, ((0.5, 3.0), (4.0, 6.0)))]


def test_chunks_fit_the_limit_and_cut_at_the_longest_pause() -> None:
    # 10 s sentences with 0.6 s breaths, and one 3 s pause after the second.
    spans = [Span(0, 10), Span(10.6, 20), Span(23, 33), Span(33.6, 43), Span(43.6, 53)]
    chunks = plan_chunks(spans, total_s=55.0, max_s=30.0, pad_s=0.5)
    assert len(chunks) == 3  # 22.5..53.5 would be 31 s
    assert chunks[0].end_s <= 21.5 < chunks[1].offset_s  # the cut lies in the 3 s pause
    for a, b in itertools.pairwise(chunks):
        assert a.end_s <= b.offset_s
    assert all(c.duration_s <= 30.0 for c in chunks)
    assert [s for c in chunks for s in c.speech] == [(s.start_s, s.end_s) for s in spans]


def test_overlong_speech_is_cut_hard_and_silence_gives_one_chunk() -> None:
    chunks = plan_chunks([Span(0, 70)], total_s=70.0, max_s=30.0, pad_s=0.0)
    assert [round(c.duration_s, 1) for c in chunks] == [23.3, 23.3, 23.3]
    assert plan_chunks([], total_s=100.0, max_s=30.0) == [Chunk(0, 0.0, 30.0)]
    assert plan_chunks([], total_s=0.0, max_s=30.0) == []
    with pytest.raises(ValueError):
        plan_chunks([], total_s=1.0, max_s=0)


def _tr(lang: str, *words: tuple[float, float, str], prob: float = 0.9) -> Transcript:
    ws = tuple(Word(a, b, t) for a, b, t in words)
    segs = (Segment(ws[0].start_s, ws[-1].end_s, "".join(w.text for w in ws), ws),) if ws else ()
    return Transcript(lang, prob, 30.0, segs)


def test_merge_shifts_orders_and_votes_language() -> None:
    a = (Chunk(0, 0.0, 10.0), _tr("en", (1.0, 1.5, " Hello"), (1.6, 2.0, " there.")))
    b = (Chunk(1, 12.0, 20.0), _tr("en", (0.5, 1.0, " Bye"), (7.9, 8.4, " now.")))
    c = (Chunk(2, 20.0, 21.0), _tr("de", (0.1, 0.3, " ja"), prob=0.99))
    merged = merge_transcripts([c, a, b], duration_s=21.0)
    words = [(w.start_s, w.end_s, w.text) for s in merged.segments for w in s.words]
    assert words == [(1.0, 1.5, " Hello"), (1.6, 2.0, " there."), (12.5, 13.0, " Bye"), (19.9, 20.0, " now."),
                     (20.1, 20.3, " ja")]  # fmt: skip
    assert merged.language == "en" and merged.duration_s == 21.0
    assert merge_transcripts([a], duration_s=10.0, language="ru").language == "ru"
    with pytest.raises(ValueError):
        merge_transcripts([a, a], duration_s=10.0)


def test_transcribe_chunk_recovers_speech_the_recogniser_skipped() -> None:
    calls: list[float] = []

    def recognize(audio: np.ndarray, *, language: str | None = None) -> Transcript:
        calls.append(len(audio) / 16000)
        if len(calls) == 1:  # stops after the first line, like Whisper's early window end
            return _tr("en", (0.5, 1.5, " This is a test."))
        return _tr(language or "?", (0.5, 2.0, " And so."))

    chunk = Chunk(0, 10.0, 30.0, ((10.5, 11.5), (16.0, 17.5)))
    tr = chunking.transcribe_chunk(recognize, np.zeros(16000 * 20, dtype=np.float32), chunk)
    assert [w.text for s in tr.segments for w in s.words] == [" This is a test.", " And so."]
    assert tr.segments[1].start_s == pytest.approx(6.0) and calls == [20.0, pytest.approx(14.5)]
    assert tr.language == "en"


# ------------------------------------------------------------------------- a long real input


def _words(tr: Transcript, lo: float = -1.0, hi: float = 1e9) -> list[str]:
    out = []
    for seg in tr.segments:
        for w in seg.words:
            token = re.sub(r"[^\w]", "", w.text.lower())
            if token and lo <= w.start_s < hi:
                out.append(token)
    return out


@pytest.fixture(scope="module")
def long_audio(long_wav: Path) -> np.ndarray:
    from pipelines import media

    audio, _ = media.read_wav(long_wav)
    return audio


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 100 s of real speech: jfk.flac and this_is_a_test.mp3 alternating, 0.7 s apart (16 kHz mono WAV)."""
    out = tmp_path_factory.mktemp("long") / "long.wav"
    pieces = [DATA / "jfk.flac", DATA / "this_is_a_test.mp3"] * 6
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    for p in pieces:
        args += ["-i", str(p)]
    chain = "".join(f"[{i}:a]aresample=16000,aformat=channel_layouts=mono,apad=pad_dur=0.7[a{i}];" for i in range(len(pieces)))
    chain += "".join(f"[a{i}]" for i in range(len(pieces))) + f"concat=n={len(pieces)}:v=0:a=1[a]"
    subprocess.run([*args, "-filter_complex", chain, "-map", "[a]", "-ar", "16000", "-ac", "1", str(out)], check=True)
    return out


@pytest.mark.slow
def test_long_input_is_chunked_and_its_transcript_is_continuous(long_audio: np.ndarray) -> None:
    from configs.settings import Settings
    from pipelines.asr import WhisperASR

    duration_s = len(long_audio) / 16000
    assert duration_s >= 90
    s = Settings(_env_file=None)
    asr = WhisperASR(s.asr, s.storage.models_dir)
    chunks = chunking.plan_audio(long_audio, 30.0, min_silence_ms=s.asr.min_silence_ms)
    assert len(chunks) >= 3 and all(c.duration_s <= 30.0 for c in chunks)
    parts = [(c, chunking.transcribe_chunk(asr, chunking.cut(long_audio, c), c, language="en")) for c in chunks]
    merged = merge_transcripts(parts, duration_s=duration_s, language="en")
    whole = asr(long_audio, language="en")

    starts = [w.start_s for seg in merged.segments for w in seg.words]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= duration_s
    got, want = _words(merged), _words(whole)
    truth = 6 * len(["and", "so", "my", "fellow", "americans", "ask", "not", "what", "your", "country", "can", "do", "for", "you", "ask", "what", "you", "can", "do", "for", "your", "country", "this", "is", "a", "test"])  # fmt: skip
    # Whole-file Whisper itself sometimes skips a line (temperature fallback); chunking must not lose more.
    assert truth - 4 <= len(got) <= truth and len(got) >= len(want) - 2, (len(got), len(want), truth)
    text = " ".join(got)
    for phrase in ("this is a test", "fellow americans", "for your country"):
        assert text.count(phrase) == 6, phrase  # every sentence once: none lost, none doubled
    for left, right in itertools.pairwise(chunks):  # around each border
        lo, hi = left.end_s - 4.0, right.offset_s + 4.0
        near = _words(merged, lo, hi)
        lost = Counter(_words(whole, lo, hi)) - Counter(near)
        assert sum(lost.values()) <= 1, (left, right, lost)  # what the whole-file ASR heard there is kept
        doubled = [near[i : i + 2] for i in range(len(near) - 3) if near[i : i + 2] == near[i + 2 : i + 4]]
        assert not doubled, (left, right, near)  # and nothing is transcribed twice across the cut


def test_plan_file_reads_the_wav_a_window_at_a_time(long_wav: Path, long_audio: np.ndarray) -> None:
    """One window: exactly plan_audio's chunks. 40 s windows (the VAD restarts at each border): chunks as valid,
    and every chunk read from the file equals its cut of the whole array."""
    assert chunking.plan_file(long_wav, 30.0, window_s=1000.0) == chunking.plan_audio(long_audio, 30.0)
    chunks = chunking.plan_file(long_wav, 30.0, window_s=40.0)
    assert len(chunks) >= 3 and all(c.duration_s <= 30.0 for c in chunks)
    assert all(a.end_s <= b.offset_s for a, b in itertools.pairwise(chunks))
    whole = chunking.plan_audio(long_audio, 30.0)
    speech = sum(b - a for c in chunks for a, b in c.speech)
    assert speech == pytest.approx(sum(b - a for c in whole for a, b in c.speech), rel=0.05)
    for chunk in chunks:
        assert np.array_equal(chunking.read_chunk(long_wav, chunk), chunking.cut(long_audio, chunk))


class _Recorder:
    """A recogniser that hears one word at the start of whatever it is given, and records what it got."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None]] = []

    def __call__(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        self.calls.append((len(audio), language))
        word = Word(0.1, 0.5, f" w{len(self.calls)}")
        return Transcript(language or "de", 0.8, len(audio) / 16000, (Segment(0.1, 0.5, word.text.strip(), (word,)),))


def test_transcribe_file_sends_a_short_file_whole(long_wav: Path, long_audio: np.ndarray) -> None:
    rec = _Recorder()
    transcript = chunking.transcribe_file(rec, long_wav, language="en", max_s=600.0)
    assert rec.calls == [(len(long_audio), "en")] and transcript.segments[0].start_s == 0.1


def test_transcribe_file_sends_a_long_file_in_bounded_chunks(long_wav: Path, long_audio: np.ndarray) -> None:
    rec = _Recorder()
    transcript = chunking.transcribe_file(rec, long_wav, max_s=30.0)
    sizes = [n for n, _ in rec.calls]
    assert len(sizes) >= 4 and max(sizes) <= 30 * 16000  # never the whole file, never more than one window
    assert [lang for _, lang in rec.calls] == [None] + ["de"] * (len(rec.calls) - 1)  # detected once, then given
    assert (transcript.language, transcript.language_probability) == ("de", 0.8)
    assert transcript.duration_s == pytest.approx(len(long_audio) / 16000, abs=1e-3)
    starts = [seg.start_s for seg in transcript.segments]
    assert starts == sorted(starts) and starts[-1] > 60.0  # chunk times moved into file time


def test_transcribe_file_refuses_audio_at_another_rate(tmp_path: Path) -> None:
    from pipelines.errors import InvalidMedia
    from pipelines.media import write_wav

    wav = write_wav(tmp_path / "a.wav", np.zeros(8000, dtype=np.float32), 8000)
    with pytest.raises(InvalidMedia, match="16000 Hz"):
        chunking.transcribe_file(_Recorder(), wav)
