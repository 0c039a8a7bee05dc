"""The JSON quality report: language, stage timings, per-sentence data, subtitle compliance, models."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.quality import SOFT_FLAGS
from pipelines.schema import DubPlan, PlanItem, Sentence, Transcript, Translation

REPORT_VERSION = 1


def sentence_rows(
    sentences: Sequence[Sentence], translations: Sequence[Translation], plan: DubPlan | None, voice: str | None = None
) -> list[dict[str, Any]]:
    """One row per sentence: source, translation, times, speed factor, overflow, flags and ``voice`` (the voice
    that spoke it: ``voice`` for a dubbed line with text, else None)."""
    items: dict[int, PlanItem] = {p.id: p for p in plan.items} if plan else {}
    by_id = {t.id: t for t in translations}
    rows = []
    for s in sentences:
        tr = by_id.get(s.id)
        item = items.get(s.id)
        flags = list(tr.flags) if tr else ["missing"]
        if item and item.overflow_s > 0:
            flags.append("overflow")
        if item and item.speed > 1.0:
            flags.append("sped_up")
        rows.append(
            {
                "id": s.id,
                "start_s": round(s.start_s, 3),
                "end_s": round(s.end_s, 3),
                "source": s.text,
                "translation": tr.text if tr else s.text,
                "dub_start_s": round(item.start_s, 3) if item else None,
                "dub_end_s": round(item.end_s, 3) if item else None,
                "speed": round(item.speed, 3) if item else None,
                "overflow_s": round(item.overflow_s, 3) if item else 0.0,
                "flags": flags,
                "voice": ((tr.voice if tr and tr.voice else None) or voice) if item is not None and item.end_s > item.start_s else None,
                "speaker": s.speaker,
            }
        )
    return rows


def build_report(
    job: Any, transcript: Transcript, sentences: Sequence[Sentence], per_target: dict[str, Any]
) -> dict[str, Any]:
    """Assemble the report of one run (``job`` is the runner's internal job object)."""
    from pipelines.cues import compliance
    from pipelines.fit import fit_summary

    targets: dict[str, Any] = {}
    for lang, details in per_target.items():
        plan = details.get("plan")
        voice = details.get("voice")
        rows = sentence_rows(sentences, details["translations"], plan, voice)
        targets[lang] = {
            "sentences": rows,
            # Every flag that leaves a line in the source text (see pipelines.translate; mixed_script covers the
            # letters of another writing system that could not be cut out).
            "untranslated": [
                r["id"] for r in rows if {"untranslated", "translation_failed", "mixed_script"} & set(r["flags"])
            ],
            # Lines kept in translation that still fail a reader's check (English words left, length far off, a lost
            # negation, another writing system's letters cut out).
            "quality_flagged": [r["id"] for r in rows if set(SOFT_FLAGS) & set(r["flags"])],
            "subtitle_compliance": compliance(details["cues"]),
            "fit": fit_summary(plan) if plan is not None else None,
            "resynthesized": details.get("resynthesized", 0),
            "voice": voice,
            "voice_info": voice_info(voice, lang, job.request.voices.get(lang), job.pipe.models_dir) if voice else None,
            # Set when espeak-ng speaks because the catalog has no (installed, better) voice for the language.
            "voice_fallback": details.get("voice_fallback"),
            "speaker_voices": getattr(job, "speaker_voices", {}).get(lang),  # None: one voice for all
        }
    speech_s = sum(s.end_s - s.start_s for s in sentences)
    fallbacks = [f"{lang}: spoken by {t['voice_fallback']}" for lang, t in targets.items() if t["voice_fallback"]]
    pipe = job.pipe
    return {
        "report_version": REPORT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": job.request.input,
        "duration_s": round(job.info.duration_s, 3),
        "mode": job.request.mode,
        "burn_in": job.request.burn_in,
        "background": getattr(job, "background_used", None),  # what played under the dub (None: no dub mixed)
        "source_language": transcript.language,
        "language_probability": transcript.language_probability,
        "language_forced": job.source is not None,
        "speech_s": round(speech_s, 3),
        "sentence_count": len(sentences),
        "source_subtitle_compliance": compliance(job.source_cues),
        "speakers": speakers_summary(getattr(job, "diarization", None)),
        "targets": targets,
        "timings_s": dict(job.timings.seconds),
        "rtf": round(job.timings.seconds.get("total", 0.0) / job.info.duration_s, 4) if job.info.duration_s else None,
        "cache_hits": sorted(set(job.cache.hits)),
        "models": {
            "asr": getattr(pipe._asr, "name", pipe.settings.asr.model),
            "translator": getattr(pipe._translator, "name", None) if sentences else None,
            "tts": {lang: t.get("voice") for lang, t in targets.items()},
        },
        "notes": [*job.notes, *fallbacks],
        "fetch": getattr(job, "fetch_info", None),  # a URL input: url, bytes, sha256, cached
        "source_subtitles": getattr(job, "subtitles_info", None),  # --source-subtitles: cues, rough timing
    }


def voice_info(voice: str, language: str, requested: str | None, models_dir: Path) -> dict[str, Any]:
    """What the report says of a target's voice: its engine, licence, whether it is opt-in or espeak-ng's
    fallback, and where the choice came from (``job``: the request's ``voices``; ``configured``: settings or
    the catalog's default)."""
    from pipelines import voices

    row = next((r for r in voices.list_voices(models_dir, language) if r["id"] == voice), None)
    engine = voice.split(":", 1)[0]
    return {
        "id": voice,
        "engine": engine,
        "licence": row["licence"] if row else None,
        "opt_in": bool(row["opt_in"]) if row else False,
        "fallback": engine == "espeak",  # formant synthesis: no better voice for this language (or chosen so)
        "chosen_by": "job" if requested else "configured",
    }


def speakers_summary(diarization: Any) -> dict[str, Any] | None:
    """The report's ``speakers``: count, how it was decided, and per speaker its speech and median pitch; None
    when diarization did not run (off, or subtitles as the transcript)."""
    if diarization is None:
        return None
    return {
        "count": len(diarization.speakers),
        "method": diarization.method,
        "windows": diarization.windows,
        "speakers": [
            {"id": s.id, "speech_s": s.speech_s, "median_pitch_hz": s.median_pitch_hz, "gender": s.gender}
            for s in diarization.speakers
        ],
    }


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)
