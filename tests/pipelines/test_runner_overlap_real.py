"""Overlap inside one job with the real models: Whisper base, the bundled LLM and the TTS give the same
sentences, translations, plan and report overlapped as in turn (the fakes' tests: test_runner_overlap.py)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from configs.settings import Settings
from pipelines.asr import WhisperASR
from pipelines.runner import Pipeline
from pipelines.schema import JobRequest, Transcript


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    s = Settings(_env_file=None)
    s.storage.cache_dir = tmp_path_factory.mktemp("cache")
    return Pipeline(s)


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in {"created_at", "timings_s", "rtf"}}


@pytest.mark.slow
def test_whisper_stream_gives_the_transcript_of_a_call(pipe: Pipeline, jfk_flac: Path) -> None:
    asr: WhisperASR = pipe.asr
    header, segments = asr.stream(jfk_flac)
    assert header["language"] == "en"
    assert Transcript(**header, segments=tuple(segments)) == asr(jfk_flac)


@pytest.mark.slow
@pytest.mark.parametrize("names", [True, False])  # with the name glossary (the default) the LLM waits for ASR
def test_real_models_overlapped_equal_in_turn(pipe: Pipeline, jfk_video: Path, tmp_path: Path, names: bool) -> None:
    request = JobRequest(input=str(jfk_video), target_languages=["ru"])
    reports = {}
    for overlap in (False, True):
        s = Settings(_env_file=None)
        s.translator.name_glossary = names
        s.translator.batch_size, s.translator.context_sentences = 1, 1
        s.pipeline.overlap = overlap
        s.storage.cache_dir = tmp_path / f"cache-{overlap}"  # both from a cold cache, TTS clips included
        # A fresh LLM for each mode: llama.cpp reuses the KV cache of the previous prompt's common prefix, and a
        # prompt evaluated in other chunks may round differently; both modes start from the same state so.
        run = Pipeline(s, asr=pipe.asr)
        reports[overlap] = run.run(request, tmp_path / f"out-{overlap}").report
        del run
        gc.collect()  # one LLM in memory at a time
        srt = (tmp_path / f"out-{overlap}" / "jfk.ru.srt").read_text(encoding="utf-8")
        assert any("\u0400" <= ch <= "\u04ff" for ch in srt)
    assert comparable(reports[True]) == comparable(reports[False])
    rows = reports[True]["targets"]["ru"]["sentences"]
    assert rows and all(r["dub_start_s"] is not None for r in rows)
    assert reports[True]["targets"]["ru"]["resynthesized"] >= len(rows)
    assert (tmp_path / "out-True" / "jfk.ru.srt").read_bytes() == (tmp_path / "out-False" / "jfk.ru.srt").read_bytes()
