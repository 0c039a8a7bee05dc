# ruff: noqa: F811  (the fixtures imported from the runner tests are test arguments here)
"""The batch's actors called directly on Arrow tables, with fake models (Ray Data only wires them up)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from configs.settings import Settings
from pipelines.batch.actors import ASRActor, DiarizeActor, RegroupActor, SeparateActor, TranslateActor
from pipelines.batch.chunking import Chunk
from pipelines.batch.rows import CHUNK_KEYS, FILE_KEYS, dump_chunk, load_chunk, table
from pipelines.fileio import sha256_file
from pipelines.runner import Pipeline
from pipelines.schema import JobRequest, Segment, Transcript, Word

# The runner tests' fakes and fixtures (a stage cache in tmp, a 6 s clip), so both suites test the same stages.
from tests.pipelines.test_runner import FakeASR, FakeTranslator, FakeTTS, settings, video  # noqa: F401


def _file_row(video: Path, transcript: Transcript, **request: Any) -> dict[str, Any]:
    job = JobRequest(input=str(video), **{"target_languages": ["ru"], "mode": "subtitles", **request})
    return {"input": job.input, "request": job.model_dump_json(), "digest": sha256_file(video), "duration_s": 6.0,
            "n_chunks": 1, "transcript": json.dumps(transcript.to_dict()), "translations": None, "error": "",
            "timings": "{}", "node": "n1"}  # fmt: skip


def test_translate_actor_goes_through_the_runners_stage_cache(settings: Settings, video: Path, tmp_path: Path) -> None:
    transcript = FakeASR()(None)
    row = _file_row(video, transcript, target_languages=["ru", "EN"])
    first = FakeTranslator()
    out = TranslateActor(settings, translator=first)(table([row], FILE_KEYS)).to_pylist()[0]
    translations = json.loads(out["translations"])
    assert first.calls == 1 and list(translations) == ["ru"]  # the source language is the runner's to copy
    assert out["error"] == "" and "translate" in json.loads(out["timings"])

    # A second batch over the same input (a new actor, as on a rerun): the cache answers.
    again = FakeTranslator()
    out2 = TranslateActor(settings, translator=again)(table([row], FILE_KEYS)).to_pylist()[0]
    assert again.calls == 0 and json.loads(out2["translations"]) == translations

    # And the CLI's runner, over the same input and transcript, finds the batch's translations there too.
    cli = FakeTranslator()
    result = Pipeline(settings, translator=cli).run(JobRequest(input=str(video), target_languages=["ru"], mode="subtitles"),
                                                   tmp_path / "out", transcript=transcript)  # fmt: skip
    assert cli.calls == 0 and "translate" in result.report["cache_hits"]


def test_translate_actor_skips_silent_and_failed_rows_without_loading_a_translator(settings: Settings, video: Path) -> None:
    silent = _file_row(video, Transcript("en", 0.9, 6.0, ()))
    failed = {**_file_row(video, FakeASR()(None)), "error": "InvalidMedia: no"}
    rows = TranslateActor(settings)(table([silent, failed], FILE_KEYS)).to_pylist()
    assert json.loads(rows[0]["translations"]) == {} and rows[1]["translations"] is None
    bad = _file_row(video, FakeASR()(None), target_languages=["xx"])
    assert TranslateActor(settings)(table([bad], FILE_KEYS)).to_pylist()[0]["error"].startswith("UnknownLanguage")


def _chunk_row(name: str, index: int, n: int, offset_s: float, text: str) -> dict[str, Any]:
    words = (Word(0.1, 0.5, f" {text}"),)
    tr = Transcript("en", 0.9, 2.0, (Segment(0.1, 0.5, text, words),))
    job = JobRequest(input=f"/in/{name}.mp4", target_languages=["ru"])
    return {"input": job.input, "request": job.model_dump_json(), "digest": "d" * 64, "n_chunks": n, "duration_s": 10.0,
            "chunk": dump_chunk(Chunk(index, offset_s, offset_s + 2.0)), "transcript": json.dumps(tr.to_dict()),
            "error": "", "timings": json.dumps({"asr": 1.0}), "node": "n1", "audio": b""}  # fmt: skip


def test_regroup_waits_for_every_chunk_and_puts_them_back_in_order() -> None:
    actor = RegroupActor()
    a1, b0, a0 = _chunk_row("a", 1, 2, 4.0, "later"), _chunk_row("b", 0, 1, 0.0, "only"), _chunk_row("a", 0, 2, 0.0, "first")
    empty = {**_chunk_row("c", 0, 0, 0.0, "x"), "error": "InvalidMedia: broken"}
    assert [r["input"] for r in actor(table([a1, b0], CHUNK_KEYS)).to_pylist()] == ["/in/b.mp4"]
    done = actor(table([empty, a0], CHUNK_KEYS)).to_pylist()
    assert [r["input"] for r in done] == ["/in/c.mp4", "/in/a.mp4"] and not actor.pending
    merged = Transcript.from_dict(json.loads(done[1]["transcript"]))
    assert [s.text for s in merged.segments] == ["first", "later"] and merged.segments[1].start_s == pytest.approx(4.1)
    assert json.loads(done[1]["timings"])["asr"] == 2.0 and done[1]["digest"] == "d" * 64


def test_asr_actor_transcribes_chunks_and_drops_their_audio(settings: Settings) -> None:
    heard: list[str | None] = []

    def recognize(audio: np.ndarray, *, language: str | None = None) -> Transcript:
        heard.append(language)
        return Transcript("en", 0.9, len(audio) / 16000, (Segment(0.2, 0.6, "hi", (Word(0.2, 0.6, " hi"),)),))

    row = {**_chunk_row("a", 0, 1, 0.0, "x"), "transcript": None, "audio": np.zeros(32000, np.float32).tobytes()}
    row["request"] = JobRequest(input="/in/a.mp4", target_languages=["ru"], source_language="EN").model_dump_json()
    failed = {**row, "error": "InvalidMedia: broken", "audio": b""}
    out = ASRActor(settings, asr=recognize)(table([row, failed], CHUNK_KEYS)).to_pylist()
    assert heard == ["en"] and Transcript.from_dict(json.loads(out[0]["transcript"])).segments[0].text == "hi"
    assert out[0]["audio"] == b"" and "asr" in json.loads(out[0]["timings"]) and out[1]["transcript"] is None


def test_extract_streams_one_chunk_row_at_a_time_read_from_the_file(
    tmp_path: Path, jfk_flac: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extract task is a generator of one-row tables: each chunk is read from the extracted WAV when its row
    is made (the same samples as a cut of the whole audio), never all chunks, nor the whole audio, at once."""
    import collections.abc

    import pyarrow as pa

    from pipelines import media
    from pipelines.batch import actors, chunking

    monkeypatch.setattr(actors, "node_id", lambda: "n1")
    long = tmp_path / "talk.m4a"
    media.run_ffmpeg(["-stream_loop", "-1", "-i", str(jfk_flac), "-af", "apad=pad_dur=3", "-t", "70", "-c:a", "aac", str(long)])
    job = JobRequest(input=str(long), target_languages=["ru"])
    inputs = table([{"input": job.input, "request": job.model_dump_json()}], ["input", "request"])
    out = actors.extract_chunks(inputs, chunk_max_s=30.0, min_silence_ms=500)
    assert isinstance(out, collections.abc.Iterator)
    tables = list(out)
    assert len(tables) >= 3 and all(isinstance(t, pa.Table) and t.num_rows == 1 for t in tables)
    rows = [t.to_pylist()[0] for t in tables]
    whole, _ = media.read_wav(media.extract_audio(media.probe(long), tmp_path / "whole.wav"))
    for row in rows:
        chunk = load_chunk(row["chunk"])
        assert row["error"] == "" and row["n_chunks"] == len(rows) and chunk.duration_s <= 30.0
        assert np.array_equal(np.frombuffer(row["audio"], dtype=np.float32), chunking.cut(whole, chunk))
    bad = table([{"input": str(tmp_path / "missing.mp4"), "request": job.model_dump_json()}], ["input", "request"])
    [failed] = [t.to_pylist()[0] for t in actors.extract_chunks(bad, chunk_max_s=30.0, min_silence_ms=500)]
    assert failed["error"] and failed["n_chunks"] == 0 and not failed["audio"]


def _elsewhere(settings: Settings, tmp_path: Path) -> Settings:
    """The same settings over an empty stage cache: a stage the run does not get must run again there."""
    other = settings.model_copy(deep=True)
    other.storage.cache_dir = tmp_path / "elsewhere"
    return other


def test_diarize_actor_labels_words_through_the_runners_stage_cache(settings: Settings, video: Path, tmp_path: Path) -> None:
    from pipelines.diarize import Diarization, Diarizer

    class CountingDiarizer(Diarizer):
        calls = 0

        def __call__(self, *args: Any, **kwargs: Any) -> Diarization:
            type(self).calls += 1
            return super().__call__(*args, **kwargs)

    transcript = FakeASR()(None)
    row = _file_row(video, transcript, mode="dub")
    failed = {**row, "error": "InvalidMedia: no"}
    out, skipped = DiarizeActor(settings, diarizer=CountingDiarizer(settings.diarize))(table([row, failed], FILE_KEYS)).to_pylist()
    assert CountingDiarizer.calls == 1 and out["error"] == "" and "diarize" in json.loads(out["timings"])
    labelled = Transcript.from_dict(json.loads(out["transcript"]))
    assert {w.speaker for seg in labelled.segments for w in seg.words} == {"S1"} and skipped["diarization"] is None
    diarization = Diarization.from_dict(json.loads(out["diarization"]))
    assert [s.id for s in diarization.speakers] == ["S1"]

    # A second batch (a new actor) and the CLI's runner over the same input: the cache answers.
    again = DiarizeActor(settings, diarizer=CountingDiarizer(settings.diarize))(table([row], FILE_KEYS)).to_pylist()[0]
    assert CountingDiarizer.calls == 1 and again["diarization"] == out["diarization"]
    cli = Pipeline(settings, asr=FakeASR(), translator=FakeTranslator(), diarizer=CountingDiarizer(settings.diarize))
    request = JobRequest(input=str(video), target_languages=["ru"], mode="subtitles")
    assert "diarize" in cli.run(request, tmp_path / "cli").report["cache_hits"] and CountingDiarizer.calls == 1

    # The finish actors' way: the runner takes the diarization given (an empty cache: it would otherwise diarize).
    finish = Pipeline(_elsewhere(settings, tmp_path), translator=FakeTranslator(), diarizer=CountingDiarizer(settings.diarize))
    report = finish.run(request, tmp_path / "finish", transcript=transcript, diarization=diarization).report
    assert CountingDiarizer.calls == 1 and report["speakers"]["count"] == 1
    assert {s["speaker"] for s in report["targets"]["ru"]["sentences"]} == {"S1"}


@pytest.mark.slow
def test_separate_actor_makes_the_stem_once_and_the_runner_mixes_over_it(
    settings: Settings, video: Path, tmp_path: Path
) -> None:
    from tests.pipelines.test_runner_separate import CountingSeparator

    transcript = FakeASR()(None)
    dub = _file_row(video, transcript, mode="dub", background="separate")
    others = [_file_row(video, transcript), _file_row(video, transcript, mode="dub", background="duck"),
              _file_row(video, Transcript("en", 0.9, 6.0, ()), mode="dub", background="separate")]  # fmt: skip
    separator = CountingSeparator(settings.storage.models_dir)
    out, *rest = SeparateActor(settings, separator=separator)(table([dub, *others], FILE_KEYS)).to_pylist()
    assert separator.calls == 1 and out["background"][:4] == b"fLaC" and "separate" in json.loads(out["timings"])
    assert all(r["background"] is None and "separate" not in json.loads(r["timings"]) for r in rest)  # subtitles, duck, silent
    again = CountingSeparator(settings.storage.models_dir)
    [second] = SeparateActor(settings, separator=again)(table([dub], FILE_KEYS)).to_pylist()
    assert again.calls == 0 and second["background"] == out["background"]  # from the stage cache

    # The finish actors' way: the runner mixes over the stem given (an empty cache: it would otherwise separate).
    stem = tmp_path / "background.flac"
    stem.write_bytes(out["background"])
    finish = Pipeline(_elsewhere(settings, tmp_path), asr=FakeASR(), translator=FakeTranslator(), tts=FakeTTS(), separator=again)
    request = JobRequest(input=str(video), target_languages=["ru"], background="separate")
    report = finish.run(request, tmp_path / "finish", transcript=transcript, background=stem).report
    assert again.calls == 0 and report["background"] == "separate" and "separate" not in report["timings_s"]
