"""The bridge's method table: translate_video, transcribe, translate_text, get_job, cancel_job, redub_job.

Each method checks its params (-32602 on a bad one), builds the one ``JobRequest`` or calls the stage, and
turns domain errors into JSON-RPC errors; no business logic lives here (see ``JobService``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from pipelines.errors import InvalidGlossary, VTError
from pipelines.glossary import parse_glossary
from pipelines.languages import normalize_language
from pipelines.schema import JobRequest, Sentence
from pipelines.urlguard import is_url
from serve_app.bridge.rpc import CallState, Watch, current_call, domain_error, invalid_params
from serve_app.errors import BadRequest, JobNotFound, QueueFull
from serve_app.jobs import redub
from serve_app.jobs.models import JobRecord, is_valid_id
from serve_app.jobs.public import JobPublic
from serve_app.jobs.storage import ANY_OWNER

if TYPE_CHECKING:
    from pipelines.runner import Pipeline
    from pipelines.schema import Transcript
    from serve_app.jobs.service import JobService

logger = logging.getLogger(__name__)

DEFAULT_INPUT_DIR = "inputs"
_NOT_ALLOWED = (
    "input must be a file_id from POST /files/upload, or a path in the shared input folder (queue.input_dir "
    "under the shared storage root)"
)
_APP_FOLDERS = ("uploads", "jobs")


# The bundled translator needs a source language; translate_text assumes English when none is given.
DEFAULT_TEXT_SOURCE = "en"


class BridgeModels(Protocol):
    """The models that ``transcribe`` and ``translate_text`` call (blocking calls; the bridge runs them in threads)."""

    def transcribe(self, media_path: Path, language: str | None) -> Transcript:
        """Transcribe any media file ffmpeg reads. Raises VTError (InvalidMedia, NoAudioStream, ModelError)."""
        ...

    def translate_texts(self, texts: list[str], source_language: str, target_language: str) -> list[str]:
        """Translations in the same order. Raises TranslationFailed when the backend answers nothing."""
        ...


class PipelineModels:
    """``BridgeModels`` over a lazily built ``Pipeline`` (its lazy ``asr``/``translator``), one call at a time per model
    (llama.cpp and CTranslate2 handles are not safe to share between threads)."""

    def __init__(self, pipeline_factory: Callable[[], Pipeline]) -> None:
        self._factory = pipeline_factory
        self._pipeline: Pipeline | None = None
        self._build = threading.Lock()
        self._asr_lock, self._llm_lock = threading.Lock(), threading.Lock()

    @property
    def pipeline(self) -> Pipeline:
        with self._build:
            if self._pipeline is None:
                self._pipeline = self._factory()
            return self._pipeline

    def transcribe(self, media_path: Path, language: str | None) -> Transcript:
        # The runner's per-input stages, so a file already transcribed (or translated) comes from its stage cache.
        with self._asr_lock:
            return self.pipeline.transcribe(media_path, language=language).transcript

    def translate_texts(self, texts: list[str], source_language: str, target_language: str) -> list[str]:
        # ``translate`` (not ``translate_texts``): the Serve job runner's pipeline has a handle adapter that has only it.
        sentences = [Sentence(id=i, start_s=0.0, end_s=0.0, text=t) for i, t in enumerate(texts)]
        with self._llm_lock:
            result = self.pipeline.translator.translate(
                sentences, source_language=source_language, target_language=target_language
            )
        return [t.text for t in result]


@dataclass
class MethodContext:
    """What the methods need. ``storage_root``: the shared-storage root; path inputs must lie in its
    ``input_dir`` (``queue.input_dir``; empty: file ids only)."""

    service: JobService
    models: BridgeModels
    storage_root: Path
    max_text_items: int = 256
    max_text_chars: int = 20_000
    input_dir: str = DEFAULT_INPUT_DIR


def job_view(record: JobRecord, service: JobService) -> dict[str, Any]:
    """The public view of a job, as the HTTP API sends it (``JobPublic``, JSON-ready), plus ``output_dir``:
    the job's output folder RELATIVE to the shared storage root (``jobs/<id>/out``), for consumers that mount
    that storage; never a server path."""
    view = JobPublic.from_record(record).model_dump(mode="json")
    view["output_dir"] = f"jobs/{record.id}/out"
    return view


def resolve_input(value: Any, storage_root: Path, input_dir: str = DEFAULT_INPUT_DIR) -> tuple[str, str | None]:
    """``(path, file_id)``: a 32-hex ``file_id`` from /files/upload, or a path (relative to ``storage_root``, or
    absolute) that resolves, symlinks followed, inside the shared input folder ``storage_root / input_dir``.
    Uploads, job folders, the stage cache and everything else on the storage are refused, and so is any path
    when ``input_dir`` is empty. Raises -32602 (``input_not_allowed``); the error names no server path."""
    if not isinstance(value, str) or not value.strip():
        raise invalid_params(_NOT_ALLOWED, code="input_not_allowed")
    if is_valid_id(value):
        return value, value
    root = storage_root.resolve()
    inputs = (root / input_dir).resolve() if input_dir.strip() else None
    if inputs is None or inputs == root or not inputs.is_relative_to(root) or _holds_app_folders(inputs, root):
        raise invalid_params(_NOT_ALLOWED, code="input_not_allowed")
    path = Path(value)
    resolved = (path if path.is_absolute() else root / path).resolve()
    if not resolved.is_relative_to(inputs) or resolved == inputs:
        raise invalid_params(_NOT_ALLOWED, code="input_not_allowed")
    return str(resolved), None


def _holds_app_folders(inputs: Path, root: Path) -> bool:
    """True when the input folder is (or holds, or lies in) one of the app's own folders."""
    return any(
        (root / name).resolve().is_relative_to(inputs) or inputs.is_relative_to((root / name).resolve())
        for name in _APP_FOLDERS
    )


def _str_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_params(f"{name} must be a list of strings")
    return value


def _optional_str(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise invalid_params(f"{name} must be a string or null")
    return value


def _glossary(value: Any) -> dict[str, str]:
    """``{term: translation}`` (what POST /jobs takes as JSON), or a string in either glossary syntax."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            return parse_glossary(value)
        except InvalidGlossary as exc:
            raise invalid_params(f"glossary: {exc.message}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid_params("glossary must be an object of strings {term: translation}")
    return dict(value)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_params(f"{name} must be true or false")
    return value


@dataclass(frozen=True)
class _Inputs:
    """translate_video's input params: ``input`` (a file id or shared path) or ``url``, and ``source_subtitles``."""

    input: Any
    url: Any
    source_subtitles: Any


@dataclass(frozen=True)
class _Options:
    """translate_video's job options, as sent (checked while the JobRequest is built)."""

    mode: Any
    burn_in: Any
    glossary: Any
    voices: Any
    background: Any = None
    who: dict[str, Any] | None = None  # speakers, min_speakers, max_speakers, speaker_voices (issue 15)


def _voice_map(value: Any, name: str, shape: str) -> dict[str, str]:
    """``voices`` ({language: "engine:voice"}) or ``speaker_voices`` ({"S2": "engine:voice"}), as POST /jobs takes
    them; the keys and voices themselves are checked by the job service (an unknown or uninstalled voice: -32602
    with code ``invalid_voice``)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid_params(f"{name} must be an object of strings {shape}", code="invalid_voice")
    return dict(value)


def _count(value: Any, name: str) -> int | None:
    """A speaker count: an integer or null (a bool or "2" is not one); its range is checked with the job."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid_params(f"{name} must be an integer or null", code="invalid_speakers")
    return value


def build_methods(ctx: MethodContext) -> dict[str, Callable[..., Any]]:
    """The method table. Each function's signature is the method's params (jsonrpc-py binds them: an
    unknown or missing param is -32602)."""
    service = ctx.service

    def _intake(request: JobRequest, file_id: str | None, key: str, owner: str | None, scoped: bool) -> JobRecord:
        # A key this owner has used (or that JobPublisher recorded for it) is that job; keys are per owner.
        existing = service.store.get_by_idempotency_key(key, owner=owner)
        if existing is not None:
            return existing
        # With API keys the upload must be the caller's own; without them there are no tenants to keep apart.
        return service.submit(request, file_id=file_id, owner=owner, idempotency_key=key, check_file_owner=scoped)

    async def translate_video(
        input: Any = None,
        target_languages: Any = None,
        source_language: Any = None,
        mode: Any = "dub",
        burn_in: Any = False,
        wait: Any = False,
        glossary: Any = None,
        url: Any = None,
        source_subtitles: Any = None,
        voices: Any = None,
        background: Any = None,
        speakers: Any = None,
        speaker_voices: Any = None,
        min_speakers: Any = None,
        max_speakers: Any = None,
    ) -> dict[str, Any]:
        call = current_call()
        wait = _bool(wait, "wait")
        # A redelivery, or a job JobPublisher recorded before publishing: the key finds it, whatever the params.
        # Keys are per owner: another key's message id is another job, neither found nor blocked here.
        record = await asyncio.to_thread(service.store.get_by_idempotency_key, call.item_key(), owner=call.owner)
        if record is None:
            inputs = _Inputs(input, url, source_subtitles)
            # issue 15: the types here; ranges, contradictions and voices by the job service (pipelines.jobinputs)
            who = {
                "speakers": _count(speakers, "speakers"), "min_speakers": _count(min_speakers, "min_speakers"),
                "max_speakers": _count(max_speakers, "max_speakers"),
                "speaker_voices": _voice_map(speaker_voices, "speaker_voices", '{"S2": "engine:voice"}'),
            }  # fmt: skip
            options = _Options(mode, burn_in, glossary, voices, background, who)
            record = await _submit(call, inputs, target_languages, source_language, options)
        call.watches.append(Watch(job_id=record.id, request_id=call.request_id, wait=wait))
        return {"job_id": record.id, "state": record.state.value}

    def _subtitles(call: CallState, value: Any) -> str | None:
        """``source_subtitles``: a subtitle upload's file id, or a path in the shared input folder."""
        if value is None:
            return None
        path, file_id = resolve_input(value, ctx.storage_root, ctx.input_dir)
        if file_id is None:
            return path
        try:
            return service.subtitle_path(file_id, call.owner if call.scoped else ANY_OWNER)
        except VTError as exc:
            raise domain_error(exc) from None

    async def _submit(
        call: CallState,
        inputs: _Inputs,
        target_languages: Any,
        source_language: Any,
        options: _Options,
    ) -> JobRecord:
        if (inputs.input is None) == (inputs.url is None):
            raise invalid_params("give exactly one input: input (a file id or a shared path) or url")
        if inputs.url is not None:
            if not isinstance(inputs.url, str) or not is_url(inputs.url):
                raise invalid_params("url must be an http(s) URL", code="url_refused")
            path, file_id = inputs.url, None
        else:
            path, file_id = resolve_input(inputs.input, ctx.storage_root, ctx.input_dir)
        subtitles = _subtitles(call, inputs.source_subtitles)
        try:
            request = JobRequest(
                input=path,
                source_subtitles=subtitles,
                target_languages=_str_list(target_languages, "target_languages"),
                source_language=_optional_str(source_language, "source_language"),
                mode=options.mode,
                burn_in=_bool(options.burn_in, "burn_in"),
                glossary=_glossary(options.glossary),
                voices=_voice_map(options.voices, "voices", '{language: "engine:voice"}'),
                background=options.background,
                **(options.who or {}),
            )
        except ValidationError as exc:
            raise invalid_params(f"invalid params: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
        try:
            return await asyncio.to_thread(_intake, request, file_id, call.item_key(), call.owner, call.scoped)
        except QueueFull as exc:
            call.queue_full = exc
            raise domain_error(exc) from None
        except VTError as exc:
            raise domain_error(exc) from None

    async def transcribe(input: Any, language: Any = None) -> dict[str, Any]:
        call = current_call()
        path, file_id = resolve_input(input, ctx.storage_root, ctx.input_dir)
        lang = _optional_str(language, "language")
        try:
            if file_id is not None:
                owner = call.owner if call.scoped else ANY_OWNER
                path = str(service.storage.get_file(file_id, owner=owner).path)
            lang = normalize_language(lang) if lang else None
            transcript = await asyncio.to_thread(ctx.models.transcribe, Path(path), lang)
        except VTError as exc:
            raise domain_error(exc) from None
        return {
            "language": transcript.language,
            "language_probability": transcript.language_probability,
            "duration_s": transcript.duration_s,
            "text": " ".join(s.text.strip() for s in transcript.segments if s.text.strip()),
            "segments": [{"start_s": s.start_s, "end_s": s.end_s, "text": s.text} for s in transcript.segments],
        }

    async def translate_text(texts: Any, target_language: Any, source_language: Any = None) -> dict[str, Any]:
        items = _str_list(texts, "texts")
        if not isinstance(target_language, str):
            raise invalid_params("target_language must be a string")
        source_language = _optional_str(source_language, "source_language") or DEFAULT_TEXT_SOURCE
        try:
            if len(items) > ctx.max_text_items or sum(map(len, items)) > ctx.max_text_chars:
                raise BadRequest(f"too much text (at most {ctx.max_text_items} items, {ctx.max_text_chars} characters)")
            source, target = normalize_language(source_language), normalize_language(target_language)
            result = await asyncio.to_thread(ctx.models.translate_texts, items, source, target) if items else []
        except VTError as exc:
            raise domain_error(exc) from None
        return {"translations": result, "source_language": source, "target_language": target}

    async def get_job(job_id: Any) -> dict[str, Any]:
        return job_view(await _job_call(service.get, job_id, service), service)

    async def cancel_job(job_id: Any) -> dict[str, Any]:
        return job_view(await _job_call(service.cancel, job_id, service), service)

    async def redub_job(job_id: Any, version: Any, spec: Any) -> dict[str, Any]:
        """Intake of a re-dub the API published (PATCH /jobs/{id}/segments in queue mode): requeue the job
        for that plan unless the API already did; a JobWorker on the shared store then runs it."""
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise invalid_params("version must be a positive integer")
        if not isinstance(spec, str) or not spec.isalnum() or len(spec) > 64:
            raise invalid_params("spec must be the plan's id")
        record = await _job_call(lambda j: redub.accept_redub(service, j, version, spec), job_id, service)
        return {"job_id": record.id, "state": record.state.value, "version": version}

    return {
        "redub_job": redub_job,
        "translate_video": translate_video,
        "transcribe": transcribe,
        "translate_text": translate_text,
        "get_job": get_job,
        "cancel_job": cancel_job,
    }


async def _job_call(function: Callable[[str], JobRecord], job_id: Any, service: JobService) -> JobRecord:
    if not isinstance(job_id, str):
        raise invalid_params("job_id must be a string")
    call = current_call()
    try:
        if call.scoped and (await asyncio.to_thread(service.get, job_id)).owner != call.owner:
            raise JobNotFound(f"no job with id {job_id}")  # another key's job looks like no job at all
        return await asyncio.to_thread(function, job_id)
    except VTError as exc:
        raise domain_error(exc) from None


__all__ = ["BridgeModels", "MethodContext", "PipelineModels", "build_methods", "job_view", "resolve_input"]
