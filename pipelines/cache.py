"""Content-addressed stage cache: each stage's output is stored under a hash of its inputs,
so a crashed job resumes from its last finished stage and an edit re-runs only what it touches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipelines.fileio import atomic_write_text, sha256_file

__all__ = ["StageCache", "atomic_write_text", "file_digest", "key"]


file_digest = sha256_file  # the cache's name for a file's content hash


def key(*parts: object) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class StageCache:
    """Files under ``root/<input digest>/``; JSON results keyed by stage and input hash."""

    def __init__(self, root: Path, input_digest: str) -> None:
        self.dir = Path(root) / input_digest[:24]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hits: list[str] = []

    def path(self, name: str) -> Path:
        return self.dir / name

    def get_json(self, stage: str, k: str) -> Any | None:
        p = self.dir / f"{stage}.{k}.json"
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            return None
        self.hits.append(stage)
        return data

    def put_json(self, stage: str, k: str, data: Any) -> None:
        atomic_write_text(self.dir / f"{stage}.{k}.json", json.dumps(data, ensure_ascii=False))
