"""A job whose input is a subtitle file alone (``videotranslator translate talk.en.srt --to es``).

Each cue is one sentence for the translator (its neighbours give the context), and each translated cue keeps
the source cue's timing; a cue is re-split (``split_cues``, inside its own time) only where its translation
breaks the layout rules (42 characters x 2 lines, 21 characters a second). Outputs: ``<stem>.<lang>.srt`` and
``.vtt`` per target, with ``mode="dub"`` also ``<stem>.<lang>.m4a``, the dubbed voice timed to the cues, and the
report. The runner's ``_JobRun`` supplies the stage timing, the cached translation and the fit planning.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pipelines import cache, media
from pipelines.cues import CueRules, TimedText, layout_text, split_cues
from pipelines.errors import BurnInNeedsVideo, UnknownLanguage
from pipelines.fileio import staging_dir
from pipelines.languages import normalize_language, normalize_targets
from pipelines.runner import CancelFn, JobResult, Pipeline, ProgressFn, _JobRun, _publish_all
from pipelines.schema import Cue, JobRequest, MediaInfo, Sentence, Stage, Translation, output_names
from pipelines.subsource import check_timing, read_subtitles, source_report, subtitle_language, transcript_from_cues
from pipelines.subtitles import write_subtitles

logger = logging.getLogger(__name__)

DUB_SUFFIX = ".m4a"
RULES = CueRules()


def subtitle_stem(path: Path) -> str:
    """The output stem: the file's stem without a trailing language code (``talk.en.srt`` -> ``talk``)."""
    stem = path.stem
    head, _, tail = stem.rpartition(".")
    if head:
        try:
            normalize_language(tail)
            return head
        except UnknownLanguage:
            pass
    return stem


def retime(cues: list[Cue], translations: list[Translation], rules: CueRules = RULES) -> tuple[list[Cue], int]:
    """The translated cues on the source cues' timing (``translations[i]`` is cue ``i``'s); a cue whose text
    breaks ``rules`` is re-split within its own time. Returns the cues and how many source cues were re-split."""
    by_id = {t.id: t for t in translations}
    out: list[Cue] = []
    resplit = 0
    for i, cue in enumerate(cues):
        text = by_id[i].text.strip() if i in by_id and by_id[i].text.strip() else " ".join(cue.lines)
        lines = layout_text(text, rules)
        cps = sum(len(line) for line in lines) / max(cue.end_s - cue.start_s, 0.001)
        if len(lines) <= rules.max_lines and cps <= rules.max_cps:
            out.append(Cue(cue.start_s, cue.end_s, lines))
            continue
        pieces = split_cues([TimedText(cue.start_s, cue.end_s, text)], rules, media_end_s=cue.end_s)
        resplit += int(len(pieces) > 1)
        out.extend(pieces if len(pieces) > 1 else [Cue(cue.start_s, cue.end_s, lines)])
    return out, resplit


def run_subtitle_job(
    pipe: Pipeline,
    request: JobRequest,
    out_dir: Path,
    progress: ProgressFn | None,
    should_cancel: CancelFn | None,
    *,
    translations: dict[str, list[Translation]] | None = None,
) -> JobResult:
    """Run a subtitles-alone job (see the module docstring); ``translations`` (per target, a re-dub's edited
    lines) replace the translator's. Outputs appear in ``out_dir`` only when all are complete. Raises
    InvalidSubtitles, UnknownLanguage, BurnInNeedsVideo, and what the stages raise."""
    path = Path(request.input)
    cues = read_subtitles(path, display_name=f"{request.output_stem}{path.suffix}" if request.output_stem else None)
    if request.burn_in:
        raise BurnInNeedsVideo("burning subtitles in needs a video; the input is a subtitle file")
    targets = normalize_targets(request.target_languages)
    source = normalize_language(request.source_language) if request.source_language else None
    pipe.check_voices(request, targets)
    stem = subtitle_stem(Path(f"{request.output_stem}.srt") if request.output_stem else path)
    info = MediaInfo(
        str(path), max(c.end_s for c in cues), has_video=False, has_audio=False, format_name=path.suffix[1:]
    )
    job = SubtitleJob(pipe, request, info, targets, source, progress, should_cancel)
    job.stem, job.cues, job.preset_translations = stem, cues, translations or {}
    with staging_dir(out_dir) as staging:
        result = job.execute(staging)
        result.outputs = _publish_all(result.outputs, Path(out_dir))
        return result


class SubtitleJob(_JobRun):
    """``_JobRun`` over a subtitle file: no media, no extract, ASR or mux."""

    cues: list[Cue]

    def execute(self, staging: Path) -> JobResult:
        from pipelines import report as report_mod

        started = time.perf_counter()
        path = Path(self.request.input)
        with self.stage(Stage.SUBTITLES):
            self.cache = cache.StageCache(self.settings.storage.cache_dir, cache.file_digest(path))
            src = subtitle_language([path.name, f"{self.request.output_stem}.srt"], self.source)
            transcript = transcript_from_cues(self.cues, src, self.info.duration_s)
            sentences = [Sentence(i, c.start_s, c.end_s, " ".join(c.lines)) for i, c in enumerate(self.cues)]
            self.source_cues = list(self.cues)
        check = check_timing(self.cues, None)
        self.notes += check.notes(path.name)
        outputs: dict[str, Path] = {}
        per_target: dict[str, Any] = {}
        for lang in self.targets:
            with self.stage(Stage.TRANSLATE, lang):
                translations = self.translate(sentences, src, lang)
            details: dict[str, Any] = {"translations": translations, "plan": None, "resynthesized": 0}
            if self.request.mode == "dub":
                with self.stage(Stage.TTS, lang):
                    outputs[f"{lang}.audio"] = self.dub_audio(staging, lang, sentences, details)
            details["cues"], details["resplit_cues"] = retime(self.cues, details["translations"])
            files = write_subtitles(details["cues"], staging, self.stem, lang)
            per_target[lang] = details
            outputs.update({f"{lang}.{k}": v for k, v in files.items()})
        self.timings.add("total", time.perf_counter() - started)
        report = report_mod.build_report(self, transcript, sentences, per_target)
        report["source_subtitles"] = source_report(path.name, self.cues, check)
        for lang, target in report["targets"].items():
            target["resplit_cues"] = per_target[lang]["resplit_cues"]
        report_path = staging / output_names(self.stem, "x", src)["report"]
        cache.atomic_write_text(report_path, report_mod.dumps(report))
        outputs["report"] = report_path
        return JobResult(outputs=outputs, report=report, transcript=transcript, notes=self.notes)

    def dub_audio(self, staging: Path, lang: str, sentences: list[Sentence], details: dict[str, Any]) -> Path:
        """The dubbed voice alone (no original to mix with), as AAC in ``<stem>.<lang>.m4a``."""
        from pipelines.mix import render_voice

        translations = details["translations"]
        clips = self.speak(translations, lang)
        synthesized = int(getattr(self.pipe.tts, "synthesized_count", len(clips)))
        plan, translations, clips, extra = self.fit(lang, sentences, translations, clips)
        rate = self.settings.mix.sample_rate_hz
        end_s = max([self.info.duration_s, *(p.end_s for p in plan.items)])  # no media to cut the last line at
        voice = render_voice(plan, clips, sample_rate_hz=rate, duration_s=end_s)
        wav = media.write_wav(staging / f".dub.{lang}.wav", voice, rate)
        out = staging / f"{self.stem}.{lang}{DUB_SUFFIX}"
        media.run_ffmpeg(
            ["-i", str(wav), "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(out)], what="dub encoding"
        )
        wav.unlink(missing_ok=True)
        details.update(plan=plan, translations=translations, resynthesized=synthesized + extra)
        details["voice"] = self.voice(lang)
        details["voice_fallback"] = self.fallback(lang, details["voice"])
        return out
