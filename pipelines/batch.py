"""Bulk translation on Ray Data: ``python -m pipelines.batch --input DIR|manifest.jsonl --to ru --output DIR``.

The one module of ``pipelines`` that uses Ray, and only inside functions: ``import pipelines.batch``
leaves Ray out of ``sys.modules``. The dataset flows, one row per file or per audio chunk:

1. read the input list (a folder or a manifest.jsonl, local or ``s3://``) and skip what is done;
2. extract the audio and cut it at VAD boundaries into chunks of at most ``batch.chunk_max_s`` (tasks);
3. ASR on an actor pool (``map_batches``, ``ActorPoolStrategy``; GPUs when the cluster has them);
4. regroup the chunks per file, in order, and rebuild one transcript (one small stateful actor, so
   files stream on without a global shuffle);
5. translation on an actor pool; 6. TTS, timing fit, mix and mux on an actor pool, through the same
   ``Pipeline.run`` as the CLI with the transcript and translations given.

The stage classes are the CLI's. A bad file becomes a ``failed`` line in ``OUTDIR/manifest.jsonl``;
the exit code is the number of failed inputs (at most 100), 125 when the batch could not start.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipelines import storage_uri as store
from pipelines.schema import JobRequest

if TYPE_CHECKING:
    import pyarrow as pa

    from configs.settings import BatchSettings, Settings

logger = logging.getLogger(__name__)

SETUP_ERROR = 125
MAX_EXIT = 100
_CHUNK_KEYS = ("input", "request", "chunk", "n_chunks", "duration_s", "audio", "transcript", "error", "timings", "node")
_FILE_KEYS = ("input", "request", "duration_s", "n_chunks", "transcript", "translations", "error", "timings", "node")
_DONE_KEYS = ("input", "status", "error", "outputs", "checksums", "timings", "duration_s", "n_chunks", "node")


# ------------------------------------------------------------------------------ inputs and resume


def read_inputs(spec: str, defaults: JobRequest) -> list[JobRequest]:
    """The jobs of a batch: every media file in the folder ``spec``, or one per line of a manifest
    (``.jsonl``: ``{"input": "a.mp4"}`` plus optional ``to``/``from``/``mode`` overrides, or a bare
    path per line; relative paths are relative to the manifest). Raises StorageError, ValueError."""
    if not store.is_remote(spec):
        spec = str(Path(spec).absolute())  # workers may run elsewhere: no relative paths in rows
    if not spec.endswith((".jsonl", ".json")):
        return [defaults.model_copy(update={"input": uri}) for uri in store.list_media(spec)]
    base = spec.rsplit("/", 1)[0] if "/" in spec else "."
    jobs = []
    for number, line in enumerate(store.read_text(spec).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        item: dict[str, Any] = json.loads(line) if line.startswith("{") else {"input": line}
        if "input" not in item:
            raise ValueError(f"{spec}:{number}: a line needs an 'input'")
        uri = str(item["input"])
        if not store.is_remote(uri) and not store.is_remote(base):
            uri = str((Path(base) / uri).absolute())
        elif not store.is_remote(uri) and store.is_remote(base) and not uri.startswith("/"):
            uri = store.join(base, uri)
        update: dict[str, Any] = {"input": uri}
        if "to" in item:
            update["target_languages"] = _langs(item["to"])
        if "from" in item:
            update["source_language"] = item["from"]
        if "mode" in item:
            update["mode"] = item["mode"]
        jobs.append(JobRequest.model_validate({**defaults.model_dump(), **update}))
    return jobs


def _langs(value: str | Sequence[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [v.strip() for v in items if v.strip()]


def request_key(request: JobRequest) -> dict[str, Any]:
    """What must match for an earlier result to count on a rerun."""
    return request.model_dump(mode="json")


def verify(entry: dict[str, Any] | None, request: JobRequest) -> bool:
    """Whether an earlier manifest ``entry`` still stands: same request, every output present with
    its recorded sha256, every mp4 readable by ffprobe, the report valid JSON."""
    from pipelines import media

    if not entry or entry.get("status") not in ("succeeded", "skipped") or entry.get("request") != request_key(request):
        return False
    outputs, sums = entry.get("outputs") or {}, entry.get("checksums") or {}
    if not outputs or set(outputs) != set(sums):
        return False
    with tempfile.TemporaryDirectory(prefix="vt-verify-") as tmp:
        try:
            for name, uri in outputs.items():
                local = store.download(uri, Path(tmp))
                if not local.is_file() or _sha256(local) != sums[name]:
                    return False
                if name.endswith("mp4"):
                    media.probe(local)
                if name == "report":
                    json.loads(local.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - any doubt means redo
            return False
    return True


def _sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def load_manifest(out: str) -> dict[str, dict[str, Any]]:
    """The entries of an earlier run's ``OUTDIR/manifest.jsonl`` by input (empty when none)."""
    uri = store.join(out, "manifest.jsonl")
    if not store.exists(uri):
        return {}
    entries: dict[str, dict[str, Any]] = {}
    for line in store.read_text(uri).splitlines():
        try:
            item = json.loads(line)
            entries[str(item["input"])] = item
        except (ValueError, KeyError, TypeError):
            continue
    return entries


# ------------------------------------------------------------------------------ resources


@dataclass(frozen=True)
class Resources:
    """Actor pool sizes and the CPUs/GPUs each actor or task asks Ray for."""

    asr_actors: int
    translate_actors: int
    tts_actors: int
    actor_cpus: float
    task_cpus: float
    asr_gpus: float
    translate_gpus: float


def plan_resources(b: BatchSettings, cluster_cpus: float, cluster_gpus: float) -> Resources:
    """Fit the settings to the cluster: all pools must be alive at once, or the stream stalls.

    Each actor asks for ``num_cpus_per_actor``, scaled down so that every pool plus one extract task
    fits in ``cluster_cpus``; extract tasks ask for half that, which also keeps Ray Data from fusing
    them into the ASR actors (extraction stays in tasks, spread over the nodes). ``num_gpus_per_actor`` goes to the ASR and translation actors; when it
    is 0 and the cluster has GPUs, they share them (at most one GPU each).
    """
    actors = b.asr_actors + b.translate_actors + b.tts_actors
    actor_cpus = round(min(b.num_cpus_per_actor, cluster_cpus / (actors + 1)), 3)
    gpus = b.num_gpus_per_actor
    if gpus <= 0 and cluster_gpus > 0:
        gpus = round(min(1.0, cluster_gpus / (b.asr_actors + b.translate_actors)), 3)
    return Resources(
        asr_actors=b.asr_actors,
        translate_actors=b.translate_actors,
        tts_actors=b.tts_actors,
        actor_cpus=max(actor_cpus, 0.01),
        task_cpus=max(round(min(1.0, actor_cpus) / 2, 3), 0.01),  # differs from the actors': no fusion
        asr_gpus=gpus,
        translate_gpus=gpus if b.num_gpus_per_actor > 0 or cluster_gpus > 0 else 0.0,
    )


# ------------------------------------------------------------------------------ Ray Data stages


def _table(rows: list[dict[str, Any]], keys: Sequence[str]) -> pa.Table:
    """Rows as an Arrow table with a fixed schema (so an empty batch has the same columns)."""
    import pyarrow as pa

    types = {
        "audio": pa.large_binary(), "n_chunks": pa.int64(), "duration_s": pa.float64(),
    }  # fmt: skip
    schema = pa.schema([(k, types.get(k, pa.large_string())) for k in keys])
    return pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows], schema=schema)


def _node() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def _timed(row: dict[str, Any], **seconds: float) -> str:
    timings = json.loads(row.get("timings") or "{}")
    for stage, value in seconds.items():
        timings[stage] = round(timings.get(stage, 0.0) + value, 3)
    return json.dumps(timings)


def extract_chunks(batch: pa.Table, *, chunk_max_s: float, min_silence_ms: int) -> pa.Table:
    """Task: input rows -> one row per audio chunk (16 kHz float32 bytes); a bad file -> one error row."""
    from pipelines import chunking, media

    out: list[dict[str, Any]] = []
    for row in batch.to_pylist():
        row.update(node=_node(), error="", n_chunks=0, duration_s=0.0)
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory(prefix="vt-extract-") as tmp:
                info = media.probe(store.download(row["input"], Path(tmp)))
                audio, _ = media.read_wav(media.extract_audio(info, Path(tmp) / "audio16k.wav"))
            row["duration_s"] = info.duration_s
            extracted = time.perf_counter()
            chunks = chunking.plan_audio(audio, chunk_max_s, min_silence_ms=min_silence_ms)
            timings = _timed(row, extract=extracted - started, chunk=time.perf_counter() - extracted)
            for chunk in chunks:
                out.append({**row, "chunk": json.dumps(asdict(chunk)), "n_chunks": len(chunks), "timings": timings,
                            "audio": chunking.cut(audio, chunk).astype("float32").tobytes()})  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            out.append({**row, "error": _reason(exc), "timings": _timed(row, extract=time.perf_counter() - started)})
    return _table(out, _CHUNK_KEYS)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class ASRActor:
    """Actor: audio chunks -> chunk transcripts, with the CLI's WhisperASR."""

    def __init__(self, settings: Settings) -> None:
        from pipelines.asr import WhisperASR

        self.asr = WhisperASR(settings.asr, settings.storage.models_dir)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import numpy as np

        from pipelines import chunking

        rows = batch.to_pylist()
        for row in rows:
            if row["error"] or not row["audio"]:
                continue
            started = time.perf_counter()
            try:
                language = _norm(JobRequest.model_validate_json(row["request"]).source_language)
                audio = np.frombuffer(row["audio"], dtype=np.float32)
                chunk = _chunk(row["chunk"])
                transcript = chunking.transcribe_chunk(self.asr, audio, chunk, language=language)
                row["transcript"] = json.dumps(transcript.to_dict())
            except Exception as exc:  # noqa: BLE001 - recorded in the manifest
                row["error"] = _reason(exc)
            row["timings"] = _timed(row, asr=time.perf_counter() - started)
            row["audio"] = b""
        return _table(rows, _CHUNK_KEYS)


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
        return _table(done, _FILE_KEYS)

    @staticmethod
    def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
        from pipelines import chunking
        from pipelines.schema import Transcript

        first = parts[0]
        errors = [p["error"] for p in parts if p["error"]]
        asr_s = sum(json.loads(p["timings"]).get("asr", 0.0) for p in parts)
        timings = json.loads(first["timings"]) | {"asr": round(asr_s, 3)}
        row = {**first, "timings": json.dumps(timings), "error": errors[0] if errors else ""}
        if not errors:
            language = JobRequest.model_validate_json(first["request"]).source_language
            pieces = [(_chunk(p["chunk"]), Transcript.from_dict(json.loads(p["transcript"]))) for p in parts]
            merged = chunking.merge_transcripts(pieces, duration_s=first["duration_s"], language=_norm(language))
            row["transcript"] = json.dumps(merged.to_dict())
        return row


def _chunk(text: str) -> Any:
    from pipelines.chunking import Chunk

    data = json.loads(text)
    return Chunk(data["index"], data["offset_s"], data["end_s"], tuple(tuple(s) for s in data.get("speech", ())))


def _norm(language: str | None) -> str | None:
    from pipelines.languages import normalize_language

    return normalize_language(language) if language else None


class TranslateActor:
    """Actor: whole-file transcripts -> translations per target language, with the CLI's translator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.translator: Any = None  # loaded on the first file that needs it (silent files do not)

    def _make(self) -> Any:
        from pipelines.translate import make_translator

        return make_translator(self.settings.translator, self.settings.storage.models_dir)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from pipelines.schema import Transcript
        from pipelines.segment import merge_sentences

        rows = batch.to_pylist()
        for row in rows:
            if row["error"]:
                continue
            started = time.perf_counter()
            try:
                request = JobRequest.model_validate_json(row["request"])
                transcript = Transcript.from_dict(json.loads(row["transcript"]))
                sentences = merge_sentences(transcript)
                out: dict[str, Any] = {}
                for lang in dict.fromkeys(_norm(t) for t in request.target_languages):
                    if not sentences or lang is None or lang == transcript.language:
                        continue  # the runner copies the source line for line
                    self.translator = self.translator or self._make()
                    result = self.translator.translate(
                        sentences, source_language=transcript.language, target_language=lang, glossary=request.glossary
                    )
                    out[lang] = [asdict(t) for t in result]
                row["translations"] = json.dumps(out, ensure_ascii=False)
            except Exception as exc:  # noqa: BLE001 - recorded in the manifest
                row["error"] = _reason(exc)
            row["timings"] = _timed(row, translate=time.perf_counter() - started)
        return _table(rows, _FILE_KEYS)


class FinishActor:
    """Actor: TTS, timing fit, mix, mux, subtitles and report through ``Pipeline.run`` (the CLI's
    runner, told the transcript and translations), then the outputs go to ``out`` with checksums."""

    def __init__(self, settings: Settings, out: str) -> None:
        from pipelines.runner import Pipeline

        self.pipe = Pipeline(settings)
        self.out = out

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _table([self.finish(row) for row in batch.to_pylist()], _DONE_KEYS)

    def finish(self, row: dict[str, Any]) -> dict[str, Any]:
        from pipelines.schema import Transcript, Translation

        done = {**row, "status": "failed", "outputs": "{}", "checksums": "{}"}
        if row["error"]:
            return done
        started = time.perf_counter()
        try:
            request = JobRequest.model_validate_json(row["request"])
            transcript = Transcript.from_dict(json.loads(row["transcript"]))
            translations = {
                lang: [Translation(t["id"], t["source"], t["text"], tuple(t["flags"])) for t in items]
                for lang, items in json.loads(row["translations"] or "{}").items()
            }
            with tempfile.TemporaryDirectory(prefix="vt-finish-") as tmp:
                local = store.download(request.input, Path(tmp) / "in")
                local_request = request.model_copy(update={"input": str(local)})
                result = self.pipe.run(local_request, Path(tmp) / "out", transcript=transcript, translations=translations)
                if store.is_remote(request.input):  # the report names the input as the user gave it
                    result.report["input"] = request.input
                    result.outputs["report"].write_text(json.dumps(result.report, ensure_ascii=False, indent=2), "utf-8")
                uploaded = time.perf_counter()
                outputs, sums = {}, {}
                for name, path in sorted(result.outputs.items()):
                    sums[name] = _sha256(path)
                    outputs[name] = store.upload(path, store.join(self.out, path.name))
            stages = result.report.get("timings_s", {})
            timings = _timed(row, **{k: stages.get(k, 0.0) for k in ("segment", "tts", "mux")},
                             upload=time.perf_counter() - uploaded)  # fmt: skip
            return {**done, "status": "succeeded", "outputs": json.dumps(outputs), "checksums": json.dumps(sums), "timings": timings}
        except Exception as exc:  # noqa: BLE001 - recorded in the manifest
            return {**done, "error": _reason(exc), "timings": _timed(row, finish=time.perf_counter() - started)}


def build_dataset(jobs: Sequence[JobRequest], settings: Settings, out: str, res: Resources) -> Any:
    """The lazy Ray Data pipeline over ``jobs``; one output row per job (see ``FinishActor``)."""
    import ray.data

    b = settings.batch
    # One row per block: a task's output is otherwise held until the whole task ends, so a file
    # would wait for its neighbours before the next stage (and the manifest) saw it.
    ray.data.DataContext.get_current().target_max_block_size = 1
    items = [{"input": j.input, "request": j.model_dump_json()} for j in jobs]
    ds: Any = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = ds.map_batches(
        extract_chunks, batch_size=1, batch_format="pyarrow", num_cpus=res.task_cpus,
        fn_kwargs={"chunk_max_s": b.chunk_max_s, "min_silence_ms": settings.asr.min_silence_ms},
    )  # fmt: skip
    pool = ray.data.ActorPoolStrategy
    ds = ds.map_batches(
        ASRActor, fn_constructor_args=(settings,), compute=pool(size=res.asr_actors), batch_size=b.asr_batch_size,
        batch_format="pyarrow", num_cpus=res.actor_cpus, num_gpus=res.asr_gpus or None,
    )  # fmt: skip
    ds = ds.map_batches(RegroupActor, compute=pool(size=1), batch_size=None, batch_format="pyarrow", num_cpus=0)
    ds = ds.map_batches(
        TranslateActor, fn_constructor_args=(settings,), compute=pool(size=res.translate_actors), batch_size=1,
        batch_format="pyarrow", num_cpus=res.actor_cpus, num_gpus=res.translate_gpus or None,
    )  # fmt: skip
    return ds.map_batches(
        FinishActor, fn_constructor_args=(settings, out), compute=pool(size=res.tts_actors), batch_size=1,
        batch_format="pyarrow", num_cpus=res.actor_cpus,
    )  # fmt: skip


# ------------------------------------------------------------------------------ the driver


def _entry(row: dict[str, Any], request: JobRequest) -> dict[str, Any]:
    return {
        "input": row["input"],
        "status": row["status"],
        "error": row["error"] or None,
        "outputs": json.loads(row["outputs"] or "{}"),
        "timings": json.loads(row["timings"] or "{}"),
        "checksums": json.loads(row["checksums"] or "{}"),
        "request": request_key(request),
        "duration_s": round(float(row["duration_s"] or 0.0), 3),
        "chunks": int(row["n_chunks"] or 0),
        "node": row["node"],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_manifest(out: str, jobs: Sequence[JobRequest], entries: dict[str, dict[str, Any]]) -> None:
    """``OUTDIR/manifest.jsonl``: one line per input that has an entry, in input order (rewritten whole)."""
    lines = [json.dumps(entries[j.input], ensure_ascii=False) for j in jobs if j.input in entries]
    store.write_text(store.join(out, "manifest.jsonl"), "".join(line + "\n" for line in lines))


def _summary(entries: dict[str, dict[str, Any]], jobs: Sequence[JobRequest], wall_s: float, **extra: Any) -> dict[str, Any]:
    rows = [entries.get(j.input, {"status": "pending"}) for j in jobs]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("succeeded", "failed", "skipped", "pending")}
    done_s = sum(r.get("duration_s", 0.0) for r in rows if r["status"] == "succeeded")
    return {
        "counts": {"total": len(rows), **counts},
        "media_s": round(done_s, 3),
        "media_s_skipped": round(sum(r.get("duration_s", 0.0) for r in rows if r["status"] == "skipped"), 3),
        "wall_s": round(wall_s, 3),
        "throughput_media_s_per_wall_s": round(done_s / wall_s, 3) if wall_s > 0 else None,
        **extra,
    }


def _say(index: int, total: int, entry: dict[str, Any]) -> None:
    """The one-line summary per finished file (stderr; Ray Data's progress bars go there too)."""
    t = entry.get("timings") or {}
    stages = " ".join(f"{k} {v:.1f}s" for k, v in t.items() if isinstance(v, (int, float)))
    tail = f"error: {entry['error']}" if entry["status"] == "failed" else stages
    media_s = entry.get("duration_s", 0.0)
    print(f"[{index}/{total}] {entry['status']:<9} {store.basename(entry['input'])}  {media_s:.1f}s media  {tail}", file=sys.stderr)


def run(jobs: Sequence[JobRequest], settings: Settings, out: str) -> dict[str, Any]:
    """Run a batch inside an initialised Ray session; return the summary (also in ``OUTDIR/summary.json``)."""
    import ray

    started = time.perf_counter()
    previous, entries, todo = load_manifest(out), {}, []
    stems: dict[str, str] = {}
    for job in jobs:
        stem = Path(store.basename(job.input)).stem
        if stems.setdefault(stem, job.input) != job.input:
            entries[job.input] = _failed(job, f"output names clash with {stems[stem]} (same file stem {stem!r})")
        elif verify(previous.get(job.input), job):
            entries[job.input] = {**previous[job.input], "status": "skipped", "timings": {}}
        else:
            todo.append(job)
            if job.input in previous:
                entries[job.input] = previous[job.input]  # kept until redone, in case this run stops
    redo = {j.input for j in todo}
    for i, job in enumerate(j for j in jobs if j.input in entries and j.input not in redo):
        _say(i + 1, len(jobs), entries[job.input])
    write_manifest(out, jobs, entries)
    cluster: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    res = plan_resources(settings.batch, cluster.get("CPU", 1.0), cluster.get("GPU", 0.0))
    alive = len([n for n in ray.nodes() if n.get("Alive")])  # type: ignore[no-untyped-call]
    extra = {
        "resources": asdict(res),
        "cluster": {"cpus": cluster.get("CPU", 0.0), "gpus": cluster.get("GPU", 0.0), "nodes": alive},
        "chunk_max_s": settings.batch.chunk_max_s,
    }
    by_input = {j.input: j for j in todo}
    finished = len(jobs) - len(todo)
    interrupted = True
    try:
        if todo:
            try:
                for row in build_dataset(todo, settings, out, res).iter_rows():
                    entries[row["input"]] = _entry(row, by_input[row["input"]])
                    by_input.pop(row["input"])
                    finished += 1
                    write_manifest(out, jobs, entries)
                    _say(finished, len(jobs), entries[row["input"]])
            except Exception as exc:  # the dataset itself failed: the rest are failed, not lost
                logger.exception("the batch stopped early")
                for job in by_input.values():
                    entries[job.input] = _failed(job, f"batch aborted: {_reason(exc)}")
                write_manifest(out, jobs, entries)
        interrupted = False
    finally:
        summary = _summary(entries, jobs, time.perf_counter() - started, interrupted=interrupted, **extra)
        store.write_text(store.join(out, "summary.json"), json.dumps(summary, indent=2))
    return summary


def _failed(job: JobRequest, error: str) -> dict[str, Any]:
    row = {"input": job.input, "status": "failed", "error": error, "outputs": "{}", "timings": "{}", "checksums": "{}",
           "duration_s": 0.0, "n_chunks": 0, "node": None}  # fmt: skip
    return _entry(row, job)


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the running Ray session; else join ``address`` / ``RAY_ADDRESS`` (a cluster, or inside
    ``ray job submit``); else start a local one for the duration of the block."""
    import ray

    if ray.is_initialized():
        yield
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the manifest and summary are written and Ray is shut down."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipelines.batch", description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--input", required=True, help="a folder of media files, or a manifest.jsonl (local path or s3://)")
    p.add_argument("--to", required=True, help="target language(s), comma-separated")
    p.add_argument("--output", required=True, help="output folder (local path or s3://bucket/prefix)")
    p.add_argument("--mode", choices=["dub", "subtitles"], default="dub")
    p.add_argument("--from", dest="source", default=None, help="source language (default: detect per file)")
    p.add_argument("--glossary", type=Path, default=None, help="a 'term = translation' file")
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else start Ray locally)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    """The batch command; returns the exit code (failed inputs, at most 100; 125 = could not start).

    ``settings`` defaults to ``get_settings()`` (environment, .env, YAML)."""
    from configs.logging import setup_logging
    from configs.settings import get_settings
    from pipelines.errors import VTError

    args = parse_args(argv)
    settings = (settings or get_settings()).model_copy(deep=True)
    storage = settings.storage  # workers may start elsewhere: make the cache path absolute
    storage.cache_dir = storage.cache_dir.absolute()
    setup_logging(settings.LOG_DIR, settings.LOG_LEVEL, console=False)
    try:
        glossary: dict[str, str] = {}
        glossary_file = args.glossary or settings.translator.glossary_file
        if glossary_file:
            from pipelines.translate import load_glossary

            glossary = load_glossary(glossary_file)
        defaults = JobRequest(input="-", target_languages=_langs(args.to), source_language=args.source,
                              mode=args.mode, glossary=glossary)  # fmt: skip
        jobs = read_inputs(args.input, defaults)
    except (VTError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return SETUP_ERROR
    if not jobs:
        print(f"error: no media files in {args.input}", file=sys.stderr)
        return SETUP_ERROR
    out = args.output if store.is_remote(args.output) else str(Path(args.output).absolute())
    try:
        with ray_session(args.address, args.num_cpus), _terminate_as_interrupt():  # after ray.init, which sets its own
            summary = run(jobs, settings, out)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    c = summary["counts"]
    print(f"done: {c['succeeded']} succeeded, {c['failed']} failed, {c['skipped']} skipped; "
          f"{summary['media_s']:.0f}s media in {summary['wall_s']:.0f}s "
          f"({summary['throughput_media_s_per_wall_s']}x); manifest: {store.join(out, 'manifest.jsonl')}", file=sys.stderr)  # fmt: skip
    return min(int(c["failed"]), MAX_EXIT)


if __name__ == "__main__":
    sys.exit(main())
