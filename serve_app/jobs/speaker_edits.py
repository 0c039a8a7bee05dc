"""A re-dub's speaker edits (issue 15): a sentence's speaker and a speaker's voice, checked against the latest
report (no Ray, no FastAPI).

The report is the state: ``sentences[].speaker`` and ``targets[lang].speaker_voices`` of the current version.
``plan_speakers`` checks the edits (a speaker the report knows, a catalog voice of the target language), keeps
only those that differ, and gives the re-dub the WHOLE assignment after them (every sentence's speaker, every
speaker's voice), so the re-dub pins what it does not change: the TTS clip cache (keyed by voice and text)
then re-synthesises only the sentences whose speaker or voice really changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.jobvoices import MAX_JOB_VOICES, check_job_voice
from serve_app.errors import InvalidEdit


@dataclass(frozen=True)
class SpeakerEdits:
    """Checked speaker edits: the assignment after them, what changed, and the sentences to dub again."""

    speakers: dict[int, str] = field(default_factory=dict)  # sentence id -> speaker, every labelled sentence
    voices: dict[str, str] = field(default_factory=dict)  # speaker -> voice, pinned (empty: one voice for all)
    speaker_edits: dict[int, str] = field(default_factory=dict)  # the sentences whose speaker changed
    voice_edits: dict[str, str] = field(default_factory=dict)  # the speakers whose voice changed
    changed: list[int] = field(default_factory=list)  # sentence ids to re-dub for these edits

    def spec(self) -> dict[str, Any]:
        """What the re-dub's spec file carries (JSON: sentence ids as strings); empty without speakers."""
        out: dict[str, Any] = {}
        if self.speakers:
            out["speakers"] = {str(k): v for k, v in self.speakers.items()}
        if self.voices:
            out["speaker_voices"] = dict(self.voices)
        if self.speaker_edits or self.voice_edits:
            out["speaker_edits"] = {str(k): v for k, v in self.speaker_edits.items()}
            out["voice_edits"] = dict(self.voice_edits)
        return out


def _known(report: dict[str, Any]) -> list[str]:
    return [str(s["id"]) for s in ((report.get("speakers") or {}).get("speakers") or [])]


def _check_label(label: str, known: list[str]) -> str:
    label = label.strip()
    if label not in known:
        if not known:
            raise InvalidEdit(
                f"there is no speaker {label!r}: this job's speakers were not told apart (diarization off)"
            )
        raise InvalidEdit(f"there is no speaker {label!r} in this job (it has {', '.join(known)})")
    return label


def plan_speakers(
    report: dict[str, Any],
    language: str,
    speakers: Mapping[int, str] | None,
    voices: Mapping[str, str] | None,
    models_dir: Path | None,
) -> SpeakerEdits:
    """Check ``speakers`` (sentence id -> label) and ``voices`` (label -> catalog voice id) for ``language`` of
    ``report`` and plan them. Raises InvalidEdit (an unknown sentence or speaker, a voice for a subtitles-only
    target), InvalidVoice (a voice that is not in the catalog, not installed, or of another language;
    ``models_dir`` None: left to the runner's check). Nothing is written."""
    target = report.get("targets", {}).get(language, {})
    rows = target.get("sentences", [])
    known = _known(report)
    ids = {int(r["id"]) for r in rows}
    current = {int(r["id"]): str(r["speaker"]) for r in rows if r.get("speaker")}
    pinned: dict[str, str] = dict(target.get("speaker_voices") or {})
    speaker_edits: dict[int, str] = {}
    for sid, raw in (speakers or {}).items():
        if sid not in ids:
            raise InvalidEdit(f"there is no sentence {sid} in this job")
        label = _check_label(raw, known)
        if current.get(sid) != label:
            speaker_edits[sid] = label
    if voices and not target.get("voice"):
        raise InvalidEdit(f"the {language!r} outputs are subtitles only: no voice to change")
    if voices and len(voices) > MAX_JOB_VOICES:
        raise InvalidEdit(f"too many speaker voices: {len(voices)} (at most {MAX_JOB_VOICES})")
    voice_edits: dict[str, str] = {}
    for raw, spec in (voices or {}).items():
        label = _check_label(raw, known)
        now = pinned.get(label, target.get("voice"))  # without per-speaker voices: the language's one
        if spec.strip() == now:
            continue  # the current voice (a pitch-shifted copy too): nothing to check, nothing changes
        voice = check_job_voice(language, spec, models_dir, allow_paths=False) if models_dir is not None else spec
        if voice != now:
            voice_edits[label] = voice
    after = {**current, **speaker_edits}
    changed = sorted(sid for sid in ids if sid in speaker_edits or after.get(sid) in voice_edits)
    return SpeakerEdits(after, {**pinned, **voice_edits}, speaker_edits, voice_edits, changed)
