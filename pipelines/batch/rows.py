"""The rows passed between the batch's stages: fixed Arrow schemas and the helpers that fill them.

Structured values travel as JSON text (``request``, ``chunk``, ``transcript``, ``diarization``, ``translations``,
``timings``), the audio as float32 bytes and a background stem as FLAC bytes, so every batch, even an empty one,
has the same columns.
``digest`` is the input file's sha256: the key of its stage cache folder (``pipelines.cache``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pipelines.schema import JobRequest

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.batch.chunking import Chunk

#: one row per audio chunk (extract -> ASR -> regroup)
CHUNK_KEYS = ("input", "request", "digest", "chunk", "n_chunks", "duration_s", "audio", "transcript", "error",
              "timings", "node")  # fmt: skip
#: one row per file (regroup -> diarize -> translate -> separate -> finish)
FILE_KEYS = ("input", "request", "digest", "duration_s", "n_chunks", "transcript", "diarization", "translations",
             "background", "error", "timings", "node")  # fmt: skip
#: one row per finished file (finish -> the driver's manifest)
DONE_KEYS = ("input", "status", "error", "outputs", "checksums", "timings", "duration_s", "n_chunks", "node")


def table(rows: list[dict[str, Any]], keys: Sequence[str]) -> pa.Table:
    """Rows as an Arrow table with a fixed schema (so an empty batch has the same columns)."""
    import pyarrow as pa

    types = {
        "audio": pa.large_binary(), "background": pa.large_binary(), "n_chunks": pa.int64(), "duration_s": pa.float64(),
    }  # fmt: skip
    schema = pa.schema([(k, types.get(k, pa.large_string())) for k in keys])
    return pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows], schema=schema)


def timed(row: dict[str, Any], **seconds: float) -> str:
    """The row's ``timings`` JSON with ``seconds`` per stage added."""
    timings = json.loads(row.get("timings") or "{}")
    for stage, value in seconds.items():
        timings[stage] = round(timings.get(stage, 0.0) + value, 3)
    return json.dumps(timings)


def reason(exc: BaseException) -> str:
    """An error as the manifest records it: ``Type: message``."""
    return f"{type(exc).__name__}: {exc}"


def request_of(row: dict[str, Any]) -> JobRequest:
    return JobRequest.model_validate_json(row["request"])


def source_language(request: JobRequest) -> str | None:
    """The forced source language, canonical; None to detect it."""
    from pipelines.languages import normalize_language

    return normalize_language(request.source_language) if request.source_language else None


def dump_chunk(chunk: Chunk) -> str:
    return json.dumps(asdict(chunk))


def load_chunk(text: str) -> Chunk:
    from pipelines.batch.chunking import Chunk

    data = json.loads(text)
    return Chunk(data["index"], data["offset_s"], data["end_s"], tuple(tuple(s) for s in data.get("speech", ())))
