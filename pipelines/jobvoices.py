"""A job's own voices: ``JobRequest.voices`` (language -> ``engine:voice``) over settings tts.voices.

Checked against the catalog (``pipelines.voices.check_voice``) before any work, so an unknown, uninstalled or
opt-in voice is a clear error (``InvalidVoice``: HTTP 422, a JSON-RPC invalid-params error, a CLI exit) and
never a job that fails mid-way. Without an entry for a language, the TTS stage's own choice (settings, else
the catalog's default, else espeak-ng) speaks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.errors import InvalidVoice, ModelError, UnknownLanguage
from pipelines.languages import normalize_language

MAX_JOB_VOICES = 32


def check_job_voice(language: str | None, spec: str, models_dir: Path, *, allow_paths: bool = True) -> str:
    """The canonical id of ``spec``, a voice for ``language`` (a normalised code; None: any). Raises InvalidVoice
    (unknown, not installed, opt-in and not installed, a catalog voice of another language), with the catalog's
    one line. ``allow_paths=False`` (requests from the network): a piper model named by a file path is refused,
    so a client can neither load nor probe files on the server."""
    from pipelines import voices

    spec = spec.strip()
    where = f"{language}: " if language else ""
    if ":" not in spec:
        raise InvalidVoice(f"{where}a voice is ENGINE:VOICE (e.g. rhvoice:irina), not {spec!r}")
    if not allow_paths and spec.startswith("piper:") and not spec.startswith("piper:bundled:"):
        raise InvalidVoice(f"{where}unknown voice {spec!r}; name a catalog voice (GET /v1/voices)")
    try:
        voice_id = voices.check_voice(spec, models_dir)
    except (UnknownLanguage, ModelError) as exc:
        raise InvalidVoice(f"{where}{exc.message}") from None
    entry = voices.CATALOG.get(voice_id)
    if language and entry is not None and entry.languages and language not in entry.languages:
        raise InvalidVoice(
            f"{language}: voice {voice_id!r} speaks {', '.join(entry.languages)}, not {language!r}; "
            f"see `videotranslator voices list --lang {language}`"
        )
    return voice_id


def check_job_voices(chosen: Mapping[str, Any], models_dir: Path, *, allow_paths: bool = True) -> dict[str, str]:
    """``{language: voice id}`` with canonical language codes (``pt-BR`` -> ``pt``) and voice ids, each checked
    (``check_job_voice``; ``allow_paths`` as there). Raises InvalidVoice: a bad language code, a voice that is not a string, or a voice the
    catalog refuses. Nothing is loaded; this is cheap enough for every request."""
    if len(chosen) > MAX_JOB_VOICES:
        raise InvalidVoice(f"too many voices: {len(chosen)} (at most {MAX_JOB_VOICES})")
    out: dict[str, str] = {}
    for raw_lang, spec in chosen.items():
        try:
            lang = normalize_language(str(raw_lang))
        except UnknownLanguage as exc:
            raise InvalidVoice(f"voices: {exc.message}") from None
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidVoice(f"voices: the voice for {lang!r} must be a string ENGINE:VOICE")
        out[lang] = check_job_voice(lang, spec, models_dir, allow_paths=allow_paths)
    return out


def parse_voice_pairs(pairs: list[str]) -> dict[str, str]:
    """``["ru=rhvoice:irina", ...]`` (the CLI's ``--voice``) -> ``{"ru": "rhvoice:irina"}``, unchecked (see
    ``check_job_voices``). Raises InvalidVoice for a pair that is not LANG=ENGINE:VOICE."""
    out: dict[str, str] = {}
    for pair in pairs:
        lang, sep, spec = pair.partition("=")
        if not sep or not lang.strip() or ":" not in spec:
            raise InvalidVoice(f"--voice must be LANG=ENGINE:VOICE (e.g. ru=rhvoice:irina), not {pair!r}")
        out[lang.strip().lower()] = spec.strip()
    return out
