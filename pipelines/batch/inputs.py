"""The input list of a batch: every media file in a folder, or one job per line of a manifest.jsonl.

Paths are made absolute (Ray workers may run elsewhere, so rows never hold relative paths) and language
codes canonical (``normalize_targets``), so a rerun with ``RU`` or ``ru`` matches the same earlier result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipelines.batch import storage_uri as uris
from pipelines.errors import VTError
from pipelines.languages import normalize_language, normalize_targets
from pipelines.schema import JobRequest

# A manifest line's own job options (besides "input", "to", "from"), as the JobRequest names them.
JOB_OPTIONS = ("mode", "background", "speakers", "min_speakers", "max_speakers", "speaker_voices")


def read_inputs(
    spec: str, defaults: JobRequest, check: Callable[[JobRequest], JobRequest] | None = None
) -> list[JobRequest]:
    """The jobs of a batch: every media file in the folder ``spec``, or one per line of a manifest
    (``.jsonl``: ``{"input": "a.mp4"}`` plus optional ``to``/``from`` and JOB_OPTIONS overrides, or a bare
    path per line; relative paths are relative to the manifest). ``check``: each job through it (the speaker
    and background rules, pipelines.jobinputs), before any work. Raises StorageError, ValueError and VTError
    (UnknownLanguage, InvalidSpeakers, InvalidVoice, SeparationUnavailable; naming the manifest line)."""
    check = check or (lambda job: job)
    if not uris.is_remote(spec):
        spec = str(Path(spec).absolute())  # workers may run elsewhere: no relative paths in rows
    if not spec.endswith((".jsonl", ".json")):
        return [check(defaults.model_copy(update={"input": uri})) for uri in uris.list_media(spec)]
    base = spec.rsplit("/", 1)[0] if "/" in spec else "."
    jobs = []
    for number, line in enumerate(uris.read_text(spec).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        item: dict[str, Any] = json.loads(line) if line.startswith("{") else {"input": line}
        if "input" not in item:
            raise ValueError(f"{spec}:{number}: a line needs an 'input'")
        try:
            update = _overrides(item, _resolve(str(item["input"]), base))
            jobs.append(check(JobRequest.model_validate({**defaults.model_dump(), **update})))
        except VTError as exc:
            raise type(exc)(f"{spec}:{number}: {exc.message}") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{spec}:{number}: {where}: {first['msg']}") from None
    return jobs


def _resolve(uri: str, base: str) -> str:
    """``uri`` of a manifest line, relative to the manifest's folder ``base`` unless absolute or remote."""
    if not uris.is_remote(uri) and not uris.is_remote(base):
        return str((Path(base) / uri).absolute())
    if not uris.is_remote(uri) and uris.is_remote(base) and not uri.startswith("/"):
        return uris.join(base, uri)
    return uri


def _overrides(item: dict[str, Any], uri: str) -> dict[str, Any]:
    update: dict[str, Any] = {"input": uri}
    if "to" in item:
        update["target_languages"] = normalize_targets(item["to"])
    if "from" in item:  # null: detect, whatever --from says
        update["source_language"] = normalize_language(item["from"]) if item["from"] else None
    update.update({name: item[name] for name in JOB_OPTIONS if name in item})
    return update
