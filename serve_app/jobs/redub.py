"""Versioned re-dub: edit some translations of a finished job, then redo TTS, fit, mix and mux for that
language only, as a NEW VERSION of the job's outputs (no Ray, no FastAPI).

Speaker edits (a sentence's speaker, a speaker's voice: ``serve_app.jobs.speaker_edits``) travel the same way:
the spec file pins every sentence's speaker and every speaker's voice, and the cache re-synthesises only the
sentences whose voice changed.

The same job id keeps being the handle. ``request_redub`` checks the edits against the latest report,
writes the full list of translations to ``job_dir/redub/v<N>.json`` and puts the job back in the queue with
``record.redub = {"version", "target_language", "edited"}``. The ``JobWorker`` sees ``record.redub`` and calls
``run_redub``: ``Pipeline.run`` with the saved transcript and the preset translations, so ASR and
translation are skipped and the TTS clip cache (keyed by voice and text) re-synthesises only the changed
sentences. The previous version stays as ``job_dir/versions/v<N-1>`` (a link to its folder, see
``serve_app/jobs/outputs.py``); ``out/`` always holds the latest complete version, swapped in one rename, so
``GET /jobs/{id}`` and the download URLs keep working unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import VTError
from pipelines.fileio import atomic_copy, atomic_write_text
from pipelines.languages import normalize_language
from pipelines.quality import SOFT_FLAGS
from pipelines.schema import Transcript, Translation, dump_translations, load_translations
from serve_app.errors import InvalidEdit, QueueFull
from serve_app.jobs import outputs
from serve_app.jobs.models import JobRecord, JobState, job_logger
from serve_app.jobs.speaker_edits import plan_speakers

if TYPE_CHECKING:
    from pipelines.runner import Pipeline, ProgressFn
    from serve_app.jobs.service import JobService
    from serve_app.jobs.storage import Storage

logger = logging.getLogger(__name__)

TRANSCRIPT_FILE = "transcript.json"
MAX_TRANSLATION_CHARS = 2000
# Flags the report derives from the dub plan (not from the translation): never carried into a preset.
_PLAN_FLAGS = frozenset({"overflow", "sped_up", "missing"})
_FAILED_FLAGS = frozenset(
    {"untranslated", "translation_failed", "shortened", "mixed_script", *SOFT_FLAGS}
)


class JobBusy(VTError):
    """The job is queued or running; its outputs cannot be edited now."""

    code = "job_busy"
    http_status = 409


class NoOutputsToEdit(VTError):
    """The job has no finished outputs (no report) to edit."""

    code = "no_outputs"
    http_status = 409


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
    return outputs.names(folder) if folder.is_dir() else []


def _spec_path(storage: Storage, job_id: str, version: int, spec_id: str | None = None) -> Path:
    # Each request writes its own file (``v<N>-<spec_id>.json``): two PATCHes racing for version N never
    # overwrite each other's translations; the one whose requeue wins names its file in ``record.redub``.
    name = f"v{version}-{spec_id}.json" if spec_id else f"v{version}.json"
    return storage.job_dir(job_id) / "redub" / name


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


@dataclass(frozen=True)
class RedubPlan:
    """A checked re-dub request, its translations written to its own spec file, not yet queued."""

    job_id: str
    owner: str | None
    version: int
    target_language: str
    edited: list[int]
    spec_id: str

    @property
    def redub(self) -> dict[str, Any]:
        """What ``record.redub`` holds while the re-dub waits and runs."""
        return {"version": self.version, "target_language": self.target_language, "edited": self.edited,
                "spec": self.spec_id}  # fmt: skip


def plan_redub(
    service: JobService,
    job_id: str,
    target_language: str,
    edits: list[tuple[int, str]],
    *,
    speakers: Mapping[int, str] | None = None,
    speaker_voices: Mapping[str, str] | None = None,
) -> tuple[JobRecord, RedubPlan | None]:
    """Check ``edits`` (sentence id, new translation), ``speakers`` (sentence id -> speaker label) and
    ``speaker_voices`` (label -> voice id) for one target language of a finished job and write the full list of
    translations, speakers and voices to the plan's spec file. Returns the job and the plan, or ``None`` when
    nothing changed (nothing written). Raises JobNotFound, JobBusy (queued or running), NoOutputsToEdit,
    InvalidEdit, InvalidVoice, UnknownLanguage, QueueFull. Nothing is queued: ``commit_redub`` does that."""
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
    who = plan_speakers(report, lang, speakers, speaker_voices, service.models_dir)
    changed = sorted({*changed, *who.changed})
    if not changed:
        return record, None
    service.check_queue_room()
    plan = RedubPlan(job_id, record.owner, record.output_version + 1, lang, changed, uuid.uuid4().hex[:12])
    spec = {**plan.redub, "translations": dump_translations(translations), **who.spec()}
    atomic_write_text(
        _spec_path(service.storage, job_id, plan.version, plan.spec_id), json.dumps(spec, ensure_ascii=False)
    )
    return record, plan


def commit_redub(service: JobService, plan: RedubPlan, *, check_room: bool = True) -> JobRecord | None:
    """Requeue the job for ``plan`` (counted against the queue cap and requeued in one step, so the cap holds
    under concurrent PATCHes; it joins the queue's end). Returns the record, or ``None`` when the job is no
    longer the finished job at version ``plan.version - 1`` (another request won). ``check_room=False``: skip
    the cap (queue mode: the message is already published). Raises QueueFull."""
    try:
        done = service.store.transition(
            plan.job_id,
            {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED},
            max_queued=service.max_queued_jobs if check_room else None,
            if_output_version=plan.version - 1,
            state=JobState.QUEUED, stage=None, progress=0.0, eta_s=None, error=None, finished_at=None,
            cancel_requested=False, redub=plan.redub,
        )  # fmt: skip
    except QueueFull as exc:
        raise QueueFull(exc.message, retry_after_s=service.retry_after_s) from None
    if done is not None:
        job_logger(logger, plan.job_id).info(
            "re-dub v%d queued: %s, sentences %s", plan.version, plan.target_language, plan.edited
        )
    return done


def request_redub(
    service: JobService, job_id: str, target_language: str, edits: list[tuple[int, str]], **who: Any
) -> tuple[JobRecord, list[int]]:
    """Local mode: plan the re-dub and requeue the job in the store (a JobWorker sharing it claims it).
    Returns the job and the ids that really changed (none: the job untouched, no version made). ``who``:
    ``plan_redub``'s speakers and speaker_voices. Raises what ``plan_redub`` raises, and JobBusy when another
    request won the race."""
    record, plan = plan_redub(service, job_id, target_language, edits, **who)
    if plan is None:
        return record, []
    done = commit_redub(service, plan)
    if done is None:
        raise JobBusy(f"job {job_id} changed state meanwhile; try again")
    return done, plan.edited


async def enqueue_redub(
    service: JobService, job_id: str, target_language: str, edits: list[tuple[int, str]], **who: Any
) -> tuple[JobRecord, list[int]]:
    """What ``PATCH /jobs/{id}/segments`` calls. Local mode: ``request_redub``. Queue mode: plan, PUBLISH a
    ``redub_job`` message (broker confirm), THEN requeue in the store. Broker down: QueueUnavailable (503) and
    the job is untouched (only the unreferenced spec file was written). If this process dies between the
    confirm and the requeue, the bridge's intake of the message requeues it (``accept_redub``). ``who``:
    ``plan_redub``'s speakers and speaker_voices (they travel in the spec file, as the translations do)."""
    if service.publisher is None:
        return await asyncio.to_thread(request_redub, service, job_id, target_language, edits, **who)
    record, plan = await asyncio.to_thread(plan_redub, service, job_id, target_language, edits, **who)
    if plan is None:
        return record, []
    await service.publisher.publish_redub(plan)
    done = await asyncio.to_thread(commit_redub, service, plan, check_room=False)
    if done is None:
        current = await asyncio.to_thread(service.get, job_id)
        if current.redub != plan.redub:  # a bridge took the message first, or another PATCH won
            raise JobBusy(f"job {job_id} changed state meanwhile; try again")
        done = current
    return done, plan.edited


def accept_redub(service: JobService, job_id: str, version: int, spec_id: str) -> JobRecord:
    """The bridge's intake of a ``redub_job`` message: requeue the job for that plan unless it is already
    (requeued by the API, running, or done: ``output_version >= version``) or stale (another plan won).
    Idempotent; returns the job. Raises JobNotFound; InvalidEdit when the spec file is missing."""
    record = service.get(job_id)
    if record.output_version >= version or (record.redub or {}).get("version") == version:
        return record  # recorded already (by the API, or by this message's earlier delivery), or done
    if not record.terminal or record.output_version != version - 1:
        return record  # stale: another request's version won
    path = _spec_path(service.storage, job_id, version, spec_id)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InvalidEdit(f"re-dub v{version} of job {job_id}: its translations are missing") from None
    plan = RedubPlan(job_id, record.owner, version, spec["target_language"], list(spec["edited"]), spec_id)
    return commit_redub(service, plan, check_room=False) or service.get(job_id)


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
    except OSError:  # a file system without hard links
        atomic_copy(src, dst)


def _merge_report(old: dict[str, Any], new: dict[str, Any], spec: dict[str, Any], previous: int) -> dict[str, Any]:
    lang = spec["target_language"]
    merged = {**new, "targets": {**old.get("targets", {}), **new.get("targets", {})}}
    merged["version"] = spec["version"]
    merged["previous_version"] = previous
    merged["redub"] = {
        "target_language": lang,
        "edited": spec["edited"],
        "resynthesized": new.get("targets", {}).get(lang, {}).get("resynthesized", 0),
        "speakers": spec.get("speaker_edits", {}),  # sentence id -> its new speaker
        "speaker_voices": spec.get("voice_edits", {}),  # speaker -> its new voice
    }
    return merged


def own_prefix(record: JobRecord) -> str | None:
    """The start of the folder name of the version a re-dub record makes (None: not a re-dub)."""
    if record.redub is None:
        return None
    return outputs.prefix(int(record.redub["version"]), record.redub.get("spec"))


def run_redub(
    pipeline: Pipeline,
    storage: Storage,
    record: JobRecord,
    folder: Path,
    *,
    progress: ProgressFn | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Make version ``record.redub["version"]`` of the outputs, complete, in the attempt's ``folder``: the
    re-dubbed language's new files, the other files of the current version (hard links: no copy of a
    video) and the merged report. Returns the folder to publish and the record fields to set on success;
    the worker publishes it (``outputs.publish``, which archives the current version first).

    Idempotent: when an earlier attempt already published this version (it died between the swap and the
    store's finish), that version's folder is returned as it is. Raises VTError (JobCancelled on cancel).
    """
    assert record.redub is not None
    version = int(record.redub["version"])
    job_dir = storage.job_dir(record.id)
    done = {"output_version": version, "redub": None}
    published = outputs.current(job_dir)
    if published is not None and published.name.startswith(own_prefix(record) or "\0"):
        job_logger(logger, record.id).info("re-dub v%d was published by an earlier attempt; finishing it", version)
        return published, done
    spec_path = _spec_path(storage, record.id, version, record.redub.get("spec"))
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    lang = spec["target_language"]
    translations = load_translations(spec["translations"])
    request = record.request.model_copy(update={"target_languages": [lang]})
    if spec.get("speaker_voices"):  # every speaker's voice pinned: only the edited ones change
        request = request.model_copy(update={"speaker_voices": spec["speaker_voices"]})
    speakers = {int(k): str(v) for k, v in spec.get("speakers", {}).items()}
    # The user's words are kept verbatim: no LLM shortening of an edited line that overflows its slot.
    settings = pipeline.settings
    verbatim = settings.model_copy(update={"translator": settings.translator.model_copy(update={"shorten_ratio": 0.0})})
    if request.mode == "dub":
        pipeline.voice_for(request, lang)  # the job's voice; TTS loads in the worker's pipeline for the jobs after it
    redubber = pipeline.with_settings(verbatim)
    result = redubber.run(request, folder, progress=progress, should_cancel=should_cancel,
                          transcript=load_transcript(job_dir), translations={lang: translations},
                          speakers=speakers)  # fmt: skip
    if not (job_dir / TRANSCRIPT_FILE).is_file():
        save_transcript(job_dir, result.transcript)
    old = load_report(storage, record)
    if published is not None:  # the files of the other languages, as they are
        for path in published.iterdir():
            if path.is_file() and not path.name.startswith(".") and not (folder / path.name).exists():
                _link_or_copy(path, folder / path.name)
    report = _merge_report(old, result.report, spec, record.output_version)
    atomic_write_text(result.outputs["report"], json.dumps(report, ensure_ascii=False, indent=2))
    job_logger(logger, record.id).info(
        "re-dub v%d made: %s, %d sentence(s) re-synthesised", version, lang, report["redub"]["resynthesized"]
    )
    return folder, done
