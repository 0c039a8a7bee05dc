"""Content-addressed stage cache: each stage's output is stored under a hash of its inputs,
so a crashed job resumes from its last finished stage and an edit re-runs only what it touches."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def file_digest(path: str | Path) -> str:
    """sha256 of a file's content (hex)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def key(*parts: object) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temp file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
