"""The batch's stages: the extract task and the ASR, regroup, diarize, translate, separate and finish actors.

Each is a plain callable over a ``pyarrow.Table`` of rows (see :mod:`pipelines.batch.rows`), built on the
CLI's stage classes, so tests call them directly; :mod:`pipelines.batch.dataset` wires them into Ray
Data. A row that fails keeps its ``error`` and is passed on untouched, so one bad file never stops the
batch and still gets its line in the manifest.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.batch import storage_uri as uris
from pipelines.batch.rows import (
    CHUNK_KEYS,
    DONE_KEYS,
    FILE_KEYS,
    dump_chunk,
    load_chunk,
    reason,
    request_of,
    source_language,
    table,
    timed,
)
from pipelines.fileio import atomic_write_text, sha256_file

if TYPE_CHECKING:
    import pyarrow as pa

    from configs.settings import Settings


def node_id() -> str:
    """The Ray node this runs on (recorded in the manifest)."""
    import ray

    return str(ray.get_runtime_context().get_node_id())


def extract_chunks(batch: pa.Table, *, chunk_max_s: float, min_silence_ms: int) -> Iterator[pa.Table]:
    """Task: input rows -> one table per audio chunk (16 kHz float32 bytes); a bad file -> one error row.

    The audio is extracted to a WAV on disk, cut at VAD boundaries read a window at a time, and each chunk is
    read from the file only when its row is made; the rows go out one at a time (a generator, so Ray Data
    streams each on as its own block). Memory holds one window or one chunk, whatever the file's length.
    """
    from pipelines import media
    from pipelines.batch import chunking

    for row in batch.to_pylist():
        row.update(node=node_id(), error="", n_chunks=0, duration_s=0.0)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="vt-extract-") as tmp:
            try:
                local = uris.download(row["input"], Path(tmp))
                row["digest"] = sha256_file(local)
                info = media.probe(local)
                wav = media.extract_audio(info, Path(tmp) / "audio16k.wav")
                row["duration_s"] = info.duration_s
                extracted = time.perf_counter()
                chunks = chunking.plan_file(wav, chunk_max_s, min_silence_ms=min_silence_ms)
                timings = timed(row, extract=extracted - started, chunk=time.perf_counter() - extracted)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
                yield table([{**row, "error": reason(exc), "timings": timed(row, extract=time.perf_counter() - started)}], CHUNK_KEYS)
                continue
            for chunk in chunks:
                audio = chunking.read_chunk(wav, chunk).tobytes()
                yield table([{**row, "chunk": dump_chunk(chunk), "n_chunks": len(chunks), "timings": timings,
                              "audio": audio}], CHUNK_KEYS)  # fmt: skip


class ASRActor:
    """Actor: audio chunks -> chunk transcripts, with the CLI's WhisperASR (``asr`` may be injected: tests)."""

    def __init__(self, settings: Settings, *, asr: Any = None) -> None:
        from pipelines.asr import WhisperASR

        self.asr = asr if asr is not None else WhisperASR(settings.asr, settings.storage.models_dir)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import numpy as np

        from pipelines.batch import chunking

        rows = batch.to_pylist()
        for row in rows:
            if row["error"] or not row["audio"]:
                continue
            started = time.perf_counter()
            try:
                language = source_language(request_of(row))
                audio = np.frombuffer(row["audio"], dtype=np.float32)
                transcript = chunking.transcribe_chunk(self.asr, audio, load_chunk(row["chunk"]), language=language)
                row["transcript"] = json.dumps(transcript.to_dict())
            except Exception as exc:  # noqa: BLE001 - recorded in the manifest
                row["error"] = reason(exc)
            row["timings"] = timed(row, asr=time.perf_counter() - started)
            row["audio"] = b""
        return table(rows, CHUNK_KEYS)


class RegroupActor:
    """Actor (one per batch): holds chunk transcripts until a file's chunks are all in, then emits
    one row per file with the whole transcript, so later stages start on it at once."""

    def __init__(self) -> None:
        self.pending: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, batch: pa.Table) -> pa.Table:
        done: list[dict[str, Any]] = []
        for row in batch.to_pylist():
            if not row["n_chunks"]:
                done.append(row)
                continue
            parts = self.pending.setdefault(row["input"], [])
            parts.append(row)
            if len(parts) == row["n_chunks"]:
                done.append(self.merge(self.pending.pop(row["input"])))
        return table(done, FILE_KEYS)

    @staticmethod
    def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
        """One file row from all its chunk rows: the first error, the ASR time summed, one transcript."""
        from pipelines.batch import chunking
        from pipelines.schema import Transcript

        first = parts[0]
        errors = [p["error"] for p in parts if p["error"]]
        asr_s = sum(json.loads(p["timings"]).get("asr", 0.0) for p in parts)
        timings = json.loads(first["timings"]) | {"asr": round(asr_s, 3)}
        row = {**first, "timings": json.dumps(timings), "error": errors[0] if errors else ""}
        if not errors:
            pieces = [(load_chunk(p["chunk"]), Transcript.from_dict(json.loads(p["transcript"]))) for p in parts]
            language = source_language(request_of(first))
            merged = chunking.merge_transcripts(pieces, duration_s=first["duration_s"], language=language)
            row["transcript"] = json.dumps(merged.to_dict())
        return row


class _FileStage:
    """A per-file actor's loop: each row without an error that the stage ``wanted`` goes through ``apply`` (which
    fills its columns); an exception becomes the row's error, and the time goes under ``stage`` in its timings."""

    stage = ""

    def wanted(self, row: dict[str, Any]) -> bool:
        return True

    def apply(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        for row in rows:
            if row["error"] or not self.wanted(row):
                continue
            started = time.perf_counter()
            try:
                self.apply(row)
            except Exception as exc:  # noqa: BLE001 - recorded in the manifest
                row["error"] = reason(exc)
            row["timings"] = timed(row, **{self.stage: time.perf_counter() - started})
        return table(rows, FILE_KEYS)


class DiarizeActor(_FileStage):
    """Actor: whole-file transcripts -> the same with a speaker on each word, and the diarization itself (for the
    report), with the CLI's Diarizer through the runner's stage cache (``diarize.diarize_cached``): a rerun, or
    the CLI after a batch, diarizes nothing twice. The file's 16 kHz WAV (the extract task's was temporary) is
    extracted again into the stage cache, where the runner keeps it, only when the stage will listen
    (``diarize.needs_audio``). ``diarizer`` may be injected (tests)."""

    def __init__(self, settings: Settings, *, diarizer: Any = None) -> None:
        from pipelines.runner import Pipeline

        self.pipe = Pipeline(settings, diarizer=diarizer)

    stage = "diarize"

    def apply(self, row: dict[str, Any]) -> None:
        transcript, diarization = self.diarize(row)
        row["transcript"] = json.dumps(transcript.to_dict())
        row["diarization"] = json.dumps(diarization)

    def diarize(self, row: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The row's transcript with speakers, and its serialised ``Diarization``."""
        from pipelines import media
        from pipelines.cache import StageCache
        from pipelines.diarize import apply_speakers, diarize_cached, effective_settings, needs_audio
        from pipelines.schema import Transcript

        request = request_of(row)
        transcript = Transcript.from_dict(json.loads(row["transcript"]))
        settings = self.pipe.settings
        stage_cache = StageCache(settings.storage.cache_dir, row["digest"])
        wav = stage_cache.path("audio16k.wav")
        if not wav.is_file() and needs_audio(transcript, request.speakers, effective_settings(settings, request)):
            with tempfile.TemporaryDirectory(prefix="vt-diarize-") as tmp:
                info = media.probe(uris.download(request.input, Path(tmp)), max_duration_s=settings.MAX_DURATION)
                media.extract_audio(info, wav, max_duration_s=settings.MAX_DURATION)
        result = diarize_cached(self.pipe.diarizer, stage_cache, settings, request, wav, transcript)
        return apply_speakers(transcript, result), result.to_dict()


class SeparateActor(_FileStage):
    """Actor: the background stem of each dub whose background is 'separate' (its own, else mix.background) and
    that has speech, as the runner would make it, with the CLI's SpleeterSeparator through the stage cache
    (``separate.stem_path``): a rerun, or a re-dub with the CLI after a batch, separates nothing twice. The stem
    travels to the finish actors in the row (FLAC bytes), so they may run on another node. Other rows pass
    untouched, and the model loads on the first miss. ``separator`` may be injected (tests)."""

    def __init__(self, settings: Settings, *, separator: Any = None) -> None:
        from pipelines.runner import Pipeline

        self.pipe = Pipeline(settings, separator=separator)

    stage = "separate"

    def apply(self, row: dict[str, Any]) -> None:
        row["background"] = self.separate(row)

    def wanted(self, row: dict[str, Any]) -> bool:
        """Whether the runner would mix this file over its background stem: a dub, background 'separate',
        sentences to speak."""
        from pipelines.schema import Transcript
        from pipelines.segment import merge_sentences

        request = request_of(row)
        if request.mode != "dub" or self.pipe.background(request) != "separate":
            return False
        return bool(merge_sentences(Transcript.from_dict(json.loads(row["transcript"]))))

    def separate(self, row: dict[str, Any]) -> bytes:
        from pipelines.cache import StageCache
        from pipelines.separate import stem_path

        request = request_of(row)
        stem = stem_path(StageCache(self.pipe.settings.storage.cache_dir, row["digest"]), self.pipe.models_dir)
        if not stem.is_file():
            with tempfile.TemporaryDirectory(prefix="vt-separate-") as tmp:
                self.pipe.separator(uris.download(request.input, Path(tmp)), stem)
        return stem.read_bytes()


class TranslateActor(_FileStage):
    """Actor: whole-file transcripts -> translations per target language, with the CLI's translator and
    through the runner's stage cache (``runner.translate_cached``): a rerun over the same input, or the
    CLI after a batch, translates nothing twice. ``translator`` may be injected (tests); by default the
    settings' one loads on the first cache miss (silent files and cached ones need none)."""

    def __init__(self, settings: Settings, *, translator: Any = None) -> None:
        from pipelines.runner import Pipeline

        self.pipe = Pipeline(settings, translator=translator)

    stage = "translate"

    def apply(self, row: dict[str, Any]) -> None:
        row["translations"] = json.dumps(self.translate(row), ensure_ascii=False)

    def translate(self, row: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """The serialised translations of a file row per target language; the source language is left
        out (the runner copies it line for line), and so is everything for a file without speech."""
        from pipelines.cache import StageCache
        from pipelines.languages import normalize_targets
        from pipelines.runner import translate_cached
        from pipelines.schema import Transcript, dump_translations
        from pipelines.segment import merge_sentences

        request = request_of(row)
        transcript = Transcript.from_dict(json.loads(row["transcript"]))
        sentences = merge_sentences(transcript)
        src = transcript.language
        targets = [lang for lang in normalize_targets(request.target_languages) if lang != src]
        if not sentences or not targets:
            return {}
        stage_cache = StageCache(self.pipe.settings.storage.cache_dir, row["digest"])
        glossary = dict(request.glossary)
        return {
            lang: dump_translations(translate_cached(self.pipe, stage_cache, sentences, src, lang, glossary))
            for lang in targets
        }


class FinishActor:
    """Actor: TTS, timing fit, mix, mux, subtitles and report through ``Pipeline.run`` (the CLI's
    runner, told the transcript and translations), then the outputs go to ``out`` with checksums."""

    def __init__(self, settings: Settings, out: str) -> None:
        from pipelines.runner import Pipeline

        self.pipe = Pipeline(settings)
        self.out = out

    def __call__(self, batch: pa.Table) -> pa.Table:
        return table([self.finish(row) for row in batch.to_pylist()], DONE_KEYS)

    def finish(self, row: dict[str, Any]) -> dict[str, Any]:
        """The done row of a file row: ``succeeded`` with its outputs and their sha256, else ``failed``."""
        from pipelines.diarize import Diarization
        from pipelines.schema import Transcript, load_translations

        done = {**row, "status": "failed", "outputs": "{}", "checksums": "{}"}
        if row["error"]:
            return done
        started = time.perf_counter()
        try:
            request = request_of(row)
            transcript = Transcript.from_dict(json.loads(row["transcript"]))
            given = json.loads(row["translations"] or "{}")
            translations = {lang: load_translations(items) for lang, items in given.items()}
            diarization = Diarization.from_dict(json.loads(row["diarization"])) if row.get("diarization") else None
            with tempfile.TemporaryDirectory(prefix="vt-finish-") as tmp:
                local = uris.download(request.input, Path(tmp) / "in")
                local_request = request.model_copy(update={"input": str(local)})
                background = None
                if row.get("background"):  # the separate actors' stem
                    background = Path(tmp) / "background.flac"
                    background.write_bytes(row["background"])
                result = self.pipe.run(
                    local_request, Path(tmp) / "out", transcript=transcript, translations=translations,
                    diarization=diarization, background=background,
                )  # fmt: skip
                if uris.is_remote(request.input):  # the report names the input as the user gave it
                    result.report["input"] = request.input
                    report = json.dumps(result.report, ensure_ascii=False, indent=2)
                    atomic_write_text(result.outputs["report"], report)
                uploaded = time.perf_counter()
                outputs, sums = {}, {}
                for name, path in sorted(result.outputs.items()):
                    sums[name] = sha256_file(path)
                    outputs[name] = uris.upload(path, uris.join(self.out, path.name))
            stages = result.report.get("timings_s", {})
            timings = timed(row, **{k: stages.get(k, 0.0) for k in ("segment", "tts", "mux")},
                            upload=time.perf_counter() - uploaded)  # fmt: skip
            outcome = {"status": "succeeded", "outputs": json.dumps(outputs), "checksums": json.dumps(sums)}
            return {**done, **outcome, "timings": timings}
        except Exception as exc:  # noqa: BLE001 - recorded in the manifest
            return {**done, "error": reason(exc), "timings": timed(row, finish=time.perf_counter() - started)}
