"""A job's speaker and background options, checked the same way on every entrypoint, before any work.

``speakers``, ``min_speakers``, ``max_speakers``, ``speaker_voices`` and ``background`` of a ``JobRequest``
reach the runner from the CLI, ``POST /jobs`` (JSON and the upload form), the RabbitMQ bridge and the Ray Data
manifest. Each of them calls :func:`check_job_inputs` (the job service at submission, the runner when the job
starts), so one rule set answers everywhere:

- counts within ``1..SPEAKERS_LIMIT``; ``min_speakers <= max_speakers`` when both are given; a forced
  ``speakers`` inside the ``min_speakers``/``max_speakers`` the job gives;
- a per-speaker voice for a label ``S1``..``S<limit>`` (at most ``speakers`` when that is given), a voice that
  exists, is installed and speaks every target language (a dub only speaks targets);
- speaker options need diarization on (settings ``diarize.enabled``);
- ``background = separate`` for a dub needs the separation model pulled (it says how).

Errors: InvalidSpeakers (counts, labels, diarization off), InvalidVoice (a voice), SeparationUnavailable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from configs.settings import SPEAKERS_LIMIT, DiarizeSettings
from pipelines.errors import InvalidSpeakers, InvalidVoice
from pipelines.jobvoices import check_job_voice
from pipelines.languages import normalize_targets
from pipelines.schema import JobRequest

if TYPE_CHECKING:
    from configs.settings import Settings


def check_job_inputs(
    request: JobRequest,
    *,
    diarize: DiarizeSettings,
    configured_voices: Mapping[str, str] | None = None,
    background: str = "duck",
    models_dir: Path | None = None,
    allow_paths: bool = True,
) -> JobRequest:
    """``request`` with its per-speaker voices canonical (``s2`` -> ``S2``, catalog ids), or the error that
    refuses it (see the module). ``diarize``/``configured_voices``/``background``: settings ``diarize``,
    ``tts.speaker_voices``, ``mix.background``. ``models_dir`` None: voices and the separation model are not
    looked up here (the runner checks them when the job starts, before any work). ``allow_paths=False``
    (requests from the network): a piper voice named by a file path is refused."""
    check_counts(request, diarize)
    chosen = speaker_labels(request.speaker_voices)
    if request.speakers is not None:
        beyond = sorted(label for label in chosen if int(label[1:]) > request.speakers)
        if beyond:
            raise InvalidSpeakers(
                f"a voice for {', '.join(beyond)} but speakers={request.speakers}: speakers are S1..S{request.speakers}"
            )
    if models_dir is not None:
        targets = normalize_targets(request.target_languages) if request.mode == "dub" else []
        for label, spec in chosen.items():
            chosen[label] = _voice(label, spec, targets, models_dir, allow_paths)
        for spec in speaker_labels(configured_voices or {}).values():
            check_job_voice(None, spec, models_dir)  # settings tts.speaker_voices: the server's own choice
        if request.mode == "dub" and (request.background or background) == "separate":
            from pipelines.separate import model_file

            model_file(models_dir)  # SeparationUnavailable, with the command that installs it
    return request.model_copy(update={"speaker_voices": chosen}) if chosen != request.speaker_voices else request


def check_settings_inputs(settings: Settings, request: JobRequest, *, allow_paths: bool = True) -> JobRequest:
    """:func:`check_job_inputs` against ``settings`` (diarize, tts.speaker_voices, mix.background, models)."""
    return check_job_inputs(
        request,
        diarize=settings.diarize,
        configured_voices=settings.tts.speaker_voices,
        background=settings.mix.background,
        models_dir=settings.storage.models_dir,
        allow_paths=allow_paths,
    )


def check_counts(request: JobRequest, diarize: DiarizeSettings) -> None:
    """The request's counts, alone and together (see the module). Raises InvalidSpeakers."""
    given = {"speakers": request.speakers, "min_speakers": request.min_speakers, "max_speakers": request.max_speakers}
    for name, value in given.items():
        if value is not None and not 1 <= value <= SPEAKERS_LIMIT:
            raise InvalidSpeakers(f"{name} must be between 1 and {SPEAKERS_LIMIT}, got {value}")
    low, high = request.min_speakers, request.max_speakers
    if low is not None and high is not None and low > high:
        raise InvalidSpeakers(f"min_speakers ({low}) is more than max_speakers ({high})")
    n = request.speakers
    if n is not None and ((low is not None and n < low) or (high is not None and n > high)):
        raise InvalidSpeakers(
            f"speakers={n} contradicts min_speakers={low if low is not None else '-'}, "
            f"max_speakers={high if high is not None else '-'}: give speakers alone, or min/max alone"
        )
    wanted = [k for k, v in given.items() if v is not None] + (["speaker_voices"] if request.speaker_voices else [])
    if not diarize.enabled and wanted and not (wanted == ["speakers"] and n == 1):
        raise InvalidSpeakers(f"{', '.join(wanted)} need diarization, which is off here (settings diarize.enabled)")


def speaker_labels(chosen: Mapping[str, str]) -> dict[str, str]:
    """``chosen`` with labels canonical (``s2`` -> ``S2``). Raises InvalidSpeakers for a label that is not
    ``S1``..``S<SPEAKERS_LIMIT>`` or a voice that is not a string."""
    out: dict[str, str] = {}
    for raw, spec in chosen.items():
        label = str(raw).strip().upper()
        if not (label[:1] == "S" and label[1:].isdigit() and 1 <= int(label[1:]) <= SPEAKERS_LIMIT):
            raise InvalidSpeakers(f"speaker voice for {raw!r}: speakers are named S1..S{SPEAKERS_LIMIT}")
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidSpeakers(f"speaker voice for {label}: a voice is ENGINE:VOICE (e.g. rhvoice:irina)")
        out[f"S{int(label[1:])}"] = spec.strip()
    return out


def parse_speaker_voice_pairs(pairs: list[str], *, name: str = "--speaker-voice") -> dict[str, str]:
    """``["S2=rhvoice:irina", ...]`` (the CLI's ``--speaker-voice``, the upload form's pairs) -> a dict with
    canonical labels, the voices unchecked (:func:`check_job_inputs` checks them). Raises InvalidSpeakers."""
    out: dict[str, str] = {}
    for pair in pairs:
        label, sep, spec = pair.partition("=")
        if not sep or not label.strip() or ":" not in spec:
            raise InvalidSpeakers(f"{name} must be SPEAKER=ENGINE:VOICE (e.g. S2=rhvoice:irina), not {pair!r}")
        out[label] = spec
    return speaker_labels(out)


def _voice(label: str, spec: str, targets: list[str], models_dir: Path, allow_paths: bool) -> str:
    """The canonical id of speaker ``label``'s voice, which must speak each of ``targets`` (none: only exist).
    A pitch shift (``kokoro:x|pitch=-3``, as a re-dub pins the voices it varied) is kept; its base is checked."""
    from pipelines.voices import PITCH_MARK, split_pitch

    try:
        base, semitones = split_pitch(spec)
    except ValueError:
        raise InvalidVoice(f"speaker {label}: a pitch shift is {PITCH_MARK}<semitones>, not {spec!r}") from None
    try:
        voice = check_job_voice(None, base, models_dir, allow_paths=allow_paths)
        for lang in targets:
            check_job_voice(lang, voice, models_dir, allow_paths=allow_paths)
    except InvalidVoice as exc:
        raise InvalidVoice(f"speaker {label}: {exc.message}") from None
    return f"{voice}{PITCH_MARK}{semitones:+g}" if semitones else voice
