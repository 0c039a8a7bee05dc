"""The sequential job runner: one place that turns a JobRequest into outputs.

Stage instances are built once per ``Pipeline`` and reused across jobs; each stage's output is
cached under a hash of its inputs (see ``pipelines.cache``), so a rerun resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from configs.settings import Settings
from pipelines import cache, media
from pipelines.errors import BurnInNeedsVideo, JobCancelled, NoAudioStream
from pipelines.fileio import publish, staging_dir
from pipelines.languages import normalize_language
from pipelines.schema import (
    Clip,
    Cue,
    DubPlan,
    JobRequest,
    MediaInfo,
    Sentence,
    Slot,
    Stage,
    StageTimings,
    Transcript,
    Translation,
    output_names,
)

logger = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]
CancelFn = Callable[[], bool]


@dataclass
class JobResult:
    outputs: dict[str, Path]
    report: dict[str, Any]
    transcript: Transcript
    notes: list[str] = field(default_factory=list)


class Pipeline:
    """Holds the stages. ``asr``, ``translator`` and ``tts`` may be injected (tests, Serve handles)."""

    def __init__(self, settings: Settings, *, asr: Any = None, translator: Any = None, tts: Any = None) -> None:
        self.settings = settings
        self.models_dir = settings.storage.models_dir
        self._asr = asr
        self._translator = translator
        self._tts = tts

    # Stages load lazily: a subtitles-only job never loads TTS, a silent input never loads the LLM.
    @property
    def asr(self) -> Any:
        if self._asr is None:
            from pipelines.asr import WhisperASR

            self._asr = WhisperASR(self.settings.asr, self.models_dir)
        return self._asr

    @property
    def translator(self) -> Any:
        if self._translator is None:
            from pipelines.translate import make_translator

            self._translator = make_translator(self.settings.translator, self.models_dir)
        return self._translator

    @property
    def tts(self) -> Any:
        if self._tts is None:
            from pipelines.tts import TTSStage

            self._tts = TTSStage(self.settings.tts, self.models_dir, cache_dir=self.settings.storage.cache_dir / "tts")
        return self._tts

    def with_settings(self, settings: Settings) -> Pipeline:
        """A pipeline over other ``settings`` that shares this one's stages (those injected or loaded so far; it
        loads any other itself, lazily). Re-dub runs through one with its translator settings changed."""
        return Pipeline(settings, asr=self._asr, translator=self._translator, tts=self._tts)

    def validate(self, request: JobRequest) -> tuple[MediaInfo, list[str], str | None]:
        """Check a request before any work: languages, the input media, TTS voices. Raises VTError."""
        targets = list(dict.fromkeys(normalize_language(t) for t in request.target_languages))
        source = normalize_language(request.source_language) if request.source_language else None
        info = media.probe(request.input)
        if not info.has_audio:
            raise NoAudioStream(f"the input has no audio stream to translate: {Path(request.input).name}")
        if request.burn_in and not info.has_video:
            raise BurnInNeedsVideo(f"burning subtitles in needs a video stream; {Path(request.input).name} has none")
        if request.mode == "dub":
            for lang in targets:
                self.tts.voice_for(lang)
        return info, targets, source

    def run(
        self,
        request: JobRequest,
        out_dir: Path,
        *,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        transcript: Transcript | None = None,
        translations: dict[str, list[Translation]] | None = None,
    ) -> JobResult:
        """Run one job; outputs appear in ``out_dir`` only when all of them are complete.

        ``transcript`` and ``translations`` (per target language) may be given when an earlier stage ran
        elsewhere (Ray Data actor pools, Serve deployments); those stages are then skipped.
        """
        info, targets, source = self.validate(request)
        job = _Job(self, request, info, targets, source, progress, should_cancel)
        job.preset_transcript, job.preset_translations = transcript, translations or {}
        with staging_dir(out_dir) as staging:
            result = job.execute(staging)
            final = {}
            for name, path in result.outputs.items():
                dst = out_dir / path.name
                if path.exists():  # the same file may stand under two names (target == source language)
                    publish(path, dst)
                final[name] = dst
            result.outputs = final
            return result


class _Job:
    """One run of the pipeline over one request (internal to the runner)."""

    def __init__(
        self,
        pipe: Pipeline,
        request: JobRequest,
        info: MediaInfo,
        targets: list[str],
        source: str | None,
        progress: ProgressFn | None,
        should_cancel: CancelFn | None,
    ) -> None:
        self.pipe, self.request, self.info = pipe, request, info
        self.settings = pipe.settings
        self.targets, self.source = targets, source
        self.progress = progress or (lambda stage, fraction: None)
        self.should_cancel = should_cancel or (lambda: False)
        self.timings = StageTimings()
        self.stem = request.output_stem or Path(request.input).stem
        self.notes: list[str] = []
        self.preset_transcript: Transcript | None = None
        self.preset_translations: dict[str, list[Translation]] = {}

    @contextmanager
    def stage(self, name: Stage | str) -> Iterator[None]:
        label = name.value if isinstance(name, Stage) else name
        if self.should_cancel():
            raise JobCancelled("the job was cancelled")
        self.progress(label, 0.0)
        started = time.perf_counter()
        yield
        self.timings.add(label, time.perf_counter() - started)
        self.progress(label, 1.0)

    def execute(self, staging: Path) -> JobResult:
        from pipelines import report as report_mod
        from pipelines.segment import merge_sentences

        started = time.perf_counter()
        with self.stage(Stage.EXTRACT):
            self.cache = cache.StageCache(self.settings.storage.cache_dir, cache.file_digest(self.request.input))
            wav = self.cache.path("audio16k.wav")
            if not wav.is_file() and self.preset_transcript is None:
                media.extract_audio(self.info, wav)
        with self.stage(Stage.ASR):
            transcript = self.transcribe(wav)
        with self.stage(Stage.SEGMENT):
            sentences = merge_sentences(transcript)
        src = transcript.language
        if not sentences:
            self.notes.append("no speech detected: the transcript is empty and the outputs carry the original audio")
        outputs = self.write_source_subtitles(staging, sentences, src)
        per_target: dict[str, Any] = {}
        for lang in self.targets:
            target_outputs, per_target[lang] = self.run_target(staging, lang, src, sentences)
            outputs.update({f"{lang}.{k}": v for k, v in target_outputs.items()})
        self.timings.add("total", time.perf_counter() - started)
        report = report_mod.build_report(self, transcript, sentences, per_target)
        report_path = staging / output_names(self.stem, "x", src)["report"]
        cache.atomic_write_text(report_path, report_mod.dumps(report))
        outputs["report"] = report_path
        return JobResult(outputs=outputs, report=report, transcript=transcript, notes=self.notes)

    def transcribe(self, wav: Path) -> Transcript:
        if self.preset_transcript is not None:
            return self.preset_transcript
        k = cache.key("asr", self.settings.asr.model_dump(), self.source)
        cached = self.cache.get_json("asr", k)
        if cached is not None:
            return Transcript.from_dict(cached)
        transcript: Transcript = self.pipe.asr(wav, language=self.source)
        self.cache.put_json("asr", k, transcript.to_dict())
        return transcript

    def write_source_subtitles(self, staging: Path, sentences: list[Sentence], src: str) -> dict[str, Path]:
        from pipelines.cues import split_cues, timed_from_sentences
        from pipelines.subtitles import write_srt, write_vtt

        self.source_cues = split_cues(timed_from_sentences(sentences))
        srt = write_srt(self.source_cues, staging / output_names(self.stem, src, src)["source_srt"])
        vtt = write_vtt(self.source_cues, staging / f"{self.stem}.{src}.vtt")
        return {"source_srt": Path(srt), "source_vtt": Path(vtt)}

    def translate(self, sentences: list[Sentence], src: str, lang: str) -> list[Translation]:
        if not sentences:
            return []
        if lang == src:
            return [Translation(s.id, s.text, s.text) for s in sentences]
        if lang in self.preset_translations:
            return self.preset_translations[lang]
        glossary = dict(self.request.glossary)
        k = cache.key("tr", self.settings.translator.model_dump(mode="json"), src, lang, glossary, [s.text for s in sentences])
        cached = self.cache.get_json("translate", k)
        if cached is not None:
            return [Translation(t["id"], t["source"], t["text"], tuple(t["flags"])) for t in cached]
        result: list[Translation] = self.pipe.translator.translate(
            sentences, source_language=src, target_language=lang, glossary=glossary
        )
        self.cache.put_json("translate", k, [asdict(t) for t in result])
        return result

    def run_target(
        self, staging: Path, lang: str, src: str, sentences: list[Sentence]
    ) -> tuple[dict[str, Path], dict[str, Any]]:
        from pipelines.cues import split_cues, timed_from_translations
        from pipelines.subtitles import write_srt, write_vtt

        names = output_names(self.stem, lang, src)
        with self.stage(Stage.TRANSLATE):
            translations = self.translate(sentences, src, lang)
        cues: list[Cue] = split_cues(timed_from_translations(sentences, translations))
        srt = Path(write_srt(cues, staging / names["srt"]))
        vtt = Path(write_vtt(cues, staging / names["vtt"]))
        plan_info: dict[str, Any] = {"plan": None, "resynthesized": 0}
        dub_wav: Path | None = None
        if self.request.mode == "dub":
            with self.stage(Stage.TTS):
                dub_wav, plan_info = self.dub(staging, lang, sentences, translations)
        with self.stage(Stage.MUX):
            mp4 = self.mux(staging / names["mp4"], lang, src, srt, dub_wav)
        details = {"translations": translations, "cues": cues, **plan_info}
        if details["translations"] is not translations:  # lines shortened for the dub: subtitles follow
            cues = split_cues(timed_from_translations(sentences, details["translations"]))
            write_srt(cues, srt)
            write_vtt(cues, vtt)
            details["cues"] = cues
        return {"mp4": mp4, "srt": srt, "vtt": vtt}, details

    def dub(
        self, staging: Path, lang: str, sentences: list[Sentence], translations: list[Translation]
    ) -> tuple[Path, dict[str, Any]]:
        from pipelines.mix import build_dub_track

        clips: list[Clip] = self.pipe.tts(translations, lang) if translations else []
        resynthesized = int(getattr(self.pipe.tts, "synthesized_count", len(clips)))
        slots = [
            Slot(s.id, s.start_s, s.end_s, sentences[i + 1].start_s if i + 1 < len(sentences) else None)
            for i, s in enumerate(sentences)
        ]
        plan = self.plan(slots, clips)
        if self.settings.translator.shorten_ratio > 0 and any(p.overflow_s > 0 for p in plan.items):
            translations, clips, extra = self.shorten_overflow(lang, slots, plan, translations, clips)
            resynthesized += extra
            plan = self.plan(slots, clips)
        self.progress(Stage.TTS.value, 0.8)
        wav = build_dub_track(
            Path(self.request.input),
            plan,
            clips,
            settings=self.settings.mix,
            duration_s=self.info.duration_s,
            out_wav=staging / f".dub.{lang}.wav",
        )
        info = {"plan": plan, "resynthesized": resynthesized, "voice": self.pipe.tts.voice_for(lang)}
        return wav, {**info, "translations": translations}

    def plan(self, slots: list[Slot], clips: list[Clip]) -> DubPlan:
        from pipelines.fit import plan_fit

        fit = self.settings.fit
        durations = [c.duration_s for c in clips]
        return plan_fit(slots, durations, max_speed=fit.max_speed, min_gap_s=fit.min_gap_s, total_s=self.info.duration_s)

    def shorten_overflow(
        self, lang: str, slots: list[Slot], plan: DubPlan, translations: list[Translation], clips: list[Clip]
    ) -> tuple[list[Translation], list[Clip], int]:
        """Ask the translator for a shorter rendering of lines whose speech overflows its slot by
        more than ``translator.shorten_ratio``; re-synthesise only those lines."""
        ratio = self.settings.translator.shorten_ratio
        fit = self.settings.fit
        translations, clips = list(translations), list(clips)
        changed = 0
        for i, item in enumerate(plan.items):
            slot = slots[i]
            window = (slot.next_start_s if slot.next_start_s is not None else self.info.duration_s) - slot.start_s
            fits = max(window - fit.min_gap_s, 0.0) * fit.max_speed  # seconds of natural speech that fit
            needed = clips[i].duration_s
            if item.overflow_s <= 0 or fits <= 0 or needed / fits < 1 + ratio:
                continue
            text = translations[i].text
            shorter = self.pipe.translator.shorten(text, target_language=lang, max_chars=int(len(text) * fits / needed))
            if not shorter:
                continue
            translations[i] = Translation(translations[i].id, translations[i].source, shorter, (*translations[i].flags, "shortened"))
            clips[i] = self.pipe.tts([translations[i]], lang)[0]
            changed += 1
        return translations, clips, changed

    def mux(self, out: Path, lang: str, src: str, srt: Path, dub_wav: Path | None) -> Path:
        from pipelines.mux import AudioTrack, SubtitleTrack, mux

        source_srt = out.parent / output_names(self.stem, src, src)["source_srt"]
        audio = [AudioTrack(None, src, "Original")]
        if dub_wav is not None:
            audio = [AudioTrack(dub_wav, lang, "Dubbed"), AudioTrack(None, src, "Original")]
        subs = [SubtitleTrack(srt, lang, "Translation"), SubtitleTrack(source_srt, src, "Original")]
        return mux(self.info, out_path=out, audio_tracks=audio, subtitles=subs, burn_in=srt if self.request.burn_in else None)
