"""Versioned re-dub: edit some translations of a finished job, then redo TTS, fit, mix and mux for that
language only, as a NEW VERSION of the job's outputs (no Ray, no FastAPI).

The same job id keeps being the handle. ``request_redub`` checks the edits against the latest report,
writes the full list of translations to ``job_dir/redub/v<N>.json`` and puts the job back in the queue with
``record.redub = {"version", "target_language", "edited"}``. The ``JobWorker`` sees ``record.redub`` and calls
``run_redub``: ``Pipeline.run`` with the saved transcript and the preset translations, so ASR and
translation are skipped and the TTS clip cache (keyed by voice and text) re-synthesises only the changed
sentences. The files of the previous version are kept in ``job_dir/versions/v<N-1>/``; ``out/`` always holds
the latest complete version, so ``GET /jobs/{id}`` and the download URLs keep working unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import VTError
from pipelines.fileio import atomic_write_text
from pipelines.languages import normalize_language
from pipelines.schema import Transcript, Translation, dump_translations, load_translations
from serve_app.errors import QueueFull
from serve_app.jobs.models import JobRecord, JobState, job_logger

if TYPE_CHECKING:
    from pipelines.runner import Pipeline, ProgressFn
    from serve_app.jobs.service import JobService
    from serve_app.jobs.storage import Storage

logger = logging.getLogger(__name__)

TRANSCRIPT_FILE = "transcript.json"
MAX_TRANSLATION_CHARS = 2000
# Flags the report derives from the dub plan (not from the translation): never carried into a preset.
_PLAN_FLAGS = frozenset({"overflow", "sped_up", "missing"})
_FAILED_FLAGS = frozenset({"untranslated", "translation_failed", "shortened"})


class JobBusy(VTError):
    """The job is queued or running; its outputs cannot be edited now."""

    code = "job_busy"
    http_status = 409


class NoOutputsToEdit(VTError):
    """The job has no finished outputs (no report) to edit."""

    code = "no_outputs"
    http_status = 409


class InvalidEdit(VTError):
    """An edit names an unknown sentence or language, or carries an empty or too long translation."""

    code = "invalid_edit"
    http_status = 422


# ----------------------------------------------------------------------------- files


def save_transcript(job_dir: Path, transcript: Transcript) -> None:
    """Keep the job's transcript, so a re-dub never depends on the stage cache still holding it."""
    job_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job_dir / TRANSCRIPT_FILE, json.dumps(transcript.to_dict(), ensure_ascii=False))


def keep_transcript(job_dir: Path, result: Any) -> None:
    """``save_transcript`` for a finished run's result; best effort (a re-dub can fall back on the cache)."""
    transcript = getattr(result, "transcript", None)
    if isinstance(transcript, Transcript):
        try:
            save_transcript(job_dir, transcript)
        except OSError:
            logger.warning("could not keep the transcript in %s", job_dir.name, exc_info=True)


def load_transcript(job_dir: Path) -> Transcript | None:
    path = job_dir / TRANSCRIPT_FILE
    if not path.is_file():
        return None
    return Transcript.from_dict(json.loads(path.read_text(encoding="utf-8")))


def report_name(record: JobRecord) -> str | None:
    return next((n for n in record.outputs if n.endswith(".report.json")), None)


def load_report(storage: Storage, record: JobRecord) -> dict[str, Any]:
    """The latest version's report. Raises NoOutputsToEdit."""
    name = report_name(record)
    if name is None:
        raise NoOutputsToEdit(f"job {record.id} has no finished outputs to edit yet")
    try:
        path = storage.output_path(record.id, name)
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (VTError, OSError, ValueError) as exc:
        raise NoOutputsToEdit(f"the report of job {record.id} cannot be read") from exc
    return report


def versions_dir(storage: Storage, job_id: str) -> Path:
    return storage.job_dir(job_id) / "versions"


def version_files(storage: Storage, job_id: str, version: int) -> list[str]:
    """The file names of an archived version (empty when there is none)."""
    folder = versions_dir(storage, job_id) / f"v{version}"
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _spec_path(storage: Storage, job_id: str, version: int) -> Path:
    return storage.job_dir(job_id) / "redub" / f"v{version}.json"


# ----------------------------------------------------------------------------- request (HTTP side)


def _preset(rows: list[dict[str, Any]], edits: Mapping[int, str]) -> tuple[list[Translation], list[int]]:
    translations, changed = [], []
    for row in rows:
        flags = tuple(f for f in row.get("flags", []) if f not in _PLAN_FLAGS)
        text = str(row.get("translation", ""))
        new = edits.get(int(row["id"]))
        if new is not None and new != text:
            text, flags = new, (*[f for f in flags if f not in _FAILED_FLAGS and f != "edited"], "edited")
            changed.append(int(row["id"]))
        translations.append(Translation(int(row["id"]), str(row.get("source", "")), text, flags))
    return translations, changed


def check_edits(rows: list[dict[str, Any]], edits: list[tuple[int, str]]) -> dict[int, str]:
    """Edits as ``{sentence id: text}``. Raises InvalidEdit (unknown id, empty or too long text)."""
    known = {int(r["id"]) for r in rows}
    result: dict[int, str] = {}
    for sid, raw in edits:
        text = " ".join(raw.split())
        if sid not in known:
            raise InvalidEdit(f"there is no sentence {sid} in this job")
        if not text:
            raise InvalidEdit(f"the translation of sentence {sid} is empty")
        if len(text) > MAX_TRANSLATION_CHARS:
            raise InvalidEdit(
                f"the translation of sentence {sid} is too long (at most {MAX_TRANSLATION_CHARS} characters)"
            )
        result[sid] = text
    return result


def request_redub(
    service: JobService, job_id: str, target_language: str, edits: list[tuple[int, str]]
) -> tuple[JobRecord, list[int]]:
    """Queue a re-dub of ``edits`` (sentence id, new translation) for one target language of a finished job.

    Returns the job and the ids that really changed; when nothing changed the job is returned untouched
    and no version is made. Raises JobNotFound, JobBusy (queued or running), NoOutputsToEdit, InvalidEdit,
    UnknownLanguage, QueueFull.
    """
    record = service.get(job_id)
    if not record.terminal:
        raise JobBusy(f"job {job_id} is {record.state.value}; wait until it is finished, then edit")
    lang = normalize_language(target_language)
    if lang not in record.request.target_languages:
        raise InvalidEdit(
            f"job {job_id} has no {lang!r} translation (it has {', '.join(record.request.target_languages)})"
        )
    report = load_report(service.storage, record)
    rows = report.get("targets", {}).get(lang, {}).get("sentences")
    if rows is None:
        raise NoOutputsToEdit(f"job {job_id} has no finished {lang!r} outputs to edit")
    translations, changed = _preset(rows, check_edits(rows, edits))
    if not changed:
        return record, []
    service.check_queue_room()
    version = record.output_version + 1
    spec = {"version": version, "target_language": lang, "edited": changed,
            "translations": dump_translations(translations)}  # fmt: skip
    atomic_write_text(_spec_path(service.storage, job_id, version), json.dumps(spec, ensure_ascii=False))
    try:  # counted and requeued in one step (the cap holds under concurrent PATCHes); it joins the queue's end
        done = service.store.transition(
            job_id,
            {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED},
            max_queued=service.max_queued_jobs,
            state=JobState.QUEUED, stage=None, progress=0.0, eta_s=None, error=None, finished_at=None,
            cancel_requested=False, redub={"version": version, "target_language": lang, "edited": changed},
        )  # fmt: skip
    except QueueFull as exc:
        raise QueueFull(exc.message, retry_after_s=service.retry_after_s) from None
    if done is None:
        raise JobBusy(f"job {job_id} changed state meanwhile; try again")
    job_logger(logger, job_id).info("re-dub v%d queued: %s, sentences %s", version, lang, changed)
    return done, changed


# ----------------------------------------------------------------------------- run (worker side)


def progress_record(record: JobRecord) -> JobRecord:
    """The record as the progress tracker should see it: a re-dub runs one target language."""
    if record.redub is None:
        return record
    request = record.request.model_copy(update={"target_languages": [record.redub["target_language"]]})
    return record.model_copy(update={"request": request})


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _archive(out: Path, dst: Path) -> None:
    """Keep the current version's files (hard links: no copy of the video)."""
    shutil.rmtree(dst, ignore_errors=True)  # a half-made archive from a crash
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in out.iterdir():
        if path.is_file() and not path.name.startswith("."):
            _link_or_copy(path, tmp / path.name)
    tmp.replace(dst)


def _merge_report(old: dict[str, Any], new: dict[str, Any], spec: dict[str, Any], previous: int) -> dict[str, Any]:
    lang = spec["target_language"]
    merged = {**new, "targets": {**old.get("targets", {}), **new.get("targets", {})}}
    merged["version"] = spec["version"]
    merged["previous_version"] = previous
    merged["redub"] = {
        "target_language": lang,
        "edited": spec["edited"],
        "resynthesized": new.get("targets", {}).get(lang, {}).get("resynthesized", 0),
    }
    return merged


def run_redub(
    pipeline: Pipeline,
    storage: Storage,
    record: JobRecord,
    *,
    progress: ProgressFn | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Make version ``record.redub["version"]`` of the outputs; returns the record fields to set on success.

    Nothing in ``out/`` changes until the new version is complete; then the previous files move to
    ``versions/v<N-1>/`` and the new ones replace them. Raises VTError (JobCancelled on cancel).
    """
    assert record.redub is not None
    version = int(record.redub["version"])
    job_dir = storage.job_dir(record.id)
    spec = json.loads(_spec_path(storage, record.id, version).read_text(encoding="utf-8"))
    lang = spec["target_language"]
    translations = load_translations(spec["translations"])
    request = record.request.model_copy(update={"target_languages": [lang]})
    # The user's words are kept verbatim: no LLM shortening of an edited line that overflows its slot.
    settings = pipeline.settings
    verbatim = settings.model_copy(update={"translator": settings.translator.model_copy(update={"shorten_ratio": 0.0})})
    if request.mode == "dub":
        pipeline.tts.voice_for(lang)  # TTS loads in the worker's pipeline, so the jobs after this one share it
    redubber = pipeline.with_settings(verbatim)
    staging = job_dir / "redub" / f"v{version}.out"
    shutil.rmtree(staging, ignore_errors=True)
    result = redubber.run(request, staging, progress=progress, should_cancel=should_cancel,
                          transcript=load_transcript(job_dir), translations={lang: translations})  # fmt: skip
    if not (job_dir / TRANSCRIPT_FILE).is_file():
        save_transcript(job_dir, result.transcript)
    out = job_dir / "out"
    old = load_report(storage, record)
    report = _merge_report(old, result.report, spec, record.output_version)
    new_report = next(p for name, p in result.outputs.items() if name == "report")
    atomic_write_text(new_report, json.dumps(report, ensure_ascii=False, indent=2))
    _archive(out, versions_dir(storage, record.id) / f"v{record.output_version}")
    for path in result.outputs.values():
        path.replace(out / path.name)
    shutil.rmtree(staging, ignore_errors=True)
    job_logger(logger, record.id).info(
        "re-dub v%d done: %s, %d sentence(s) re-synthesised", version, lang, report["redub"]["resynthesized"]
    )
    return {"output_version": version, "redub": None}
