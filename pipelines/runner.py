"""The sequential job runner: one place that turns a JobRequest into outputs.

Stage instances are built once per ``Pipeline`` and reused across jobs; each stage's output is
cached under a hash of its inputs (see ``pipelines.cache``), so a rerun resumes where it stopped.
``Pipeline.run`` makes a job's outputs; ``Pipeline.transcribe`` runs only the per-input stages (extract,
ASR, segment) through the same cache, for the transcription entrypoints.

Why ~460 lines: it is the one orchestrator, and every step of a job lives here so that every caller gets it. The
next cut, when separation, diarization or voices add steps: the per-target dub steps (``dub``, ``fit``, ``plan``,
``shorten_overflow``) into a module of their own. Other input kinds live beside it: a URL is fetched by
``pipelines.fetch``, a subtitle file alone runs in ``pipelines.subjob``, source subtitles are read by ``pipelines.subsource``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configs.settings import Settings
from pipelines import cache, media
from pipelines.cues import transcript_cues
from pipelines.errors import BurnInNeedsVideo, JobCancelled, NoAudioStream
from pipelines.fileio import publish, staging_dir
from pipelines.jobinputs import check_settings_inputs
from pipelines.jobvoices import check_job_voices
from pipelines.languages import normalize_language, normalize_targets
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
    dump_translations,
    load_translations,
    output_names,
)
from pipelines.subtitles import write_subtitles

if TYPE_CHECKING:
    from pipelines.diarize import Diarization
    from pipelines.overlap_run import Front

logger = logging.getLogger(__name__)

# (stage, fraction 0-1, target language): the language is None for the per-input stages (extract, asr,
# segment) and names the target for translate, tts and mux, so no caller has to infer it from stage order.
ProgressFn = Callable[[str, float, str | None], None]
CancelFn = Callable[[], bool]


@dataclass
class JobResult:
    outputs: dict[str, Path]
    report: dict[str, Any]
    transcript: Transcript
    notes: list[str] = field(default_factory=list)


@dataclass
class Transcription:
    """What ``Pipeline.transcribe`` gives: the transcript, its sentences and source-language cues, and the
    files it wrote (``srt``, ``vtt``, ``json``; empty without an ``out_dir``)."""

    transcript: Transcript
    sentences: list[Sentence]
    cues: list[Cue]
    outputs: dict[str, Path] = field(default_factory=dict)


def _probe_audio(input: str | Path, settings: Settings) -> MediaInfo:
    info = media.probe(input, max_duration_s=settings.MAX_DURATION)
    if not info.has_audio:
        raise NoAudioStream(f"the input has no audio stream to translate: {Path(input).name}")
    return info


class Pipeline:
    """Holds the stages. ``asr``, ``translator``, ``tts``, ``separator`` and ``diarizer`` may be injected (tests,
    Serve handles: ``serve_app.deployments.adapters``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        asr: Any = None,
        translator: Any = None,
        tts: Any = None,
        separator: Any = None,
        diarizer: Any = None,
    ) -> None:
        self.settings = settings
        self.models_dir = settings.storage.models_dir
        self._asr = asr
        self._translator = translator
        self._tts = tts
        self._separator = separator
        self._fetcher: Any = None
        self._diarizer = diarizer

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

    @property
    def separator(self) -> Any:
        if self._separator is None:
            from pipelines.separate import SpleeterSeparator

            self._separator = SpleeterSeparator(self.models_dir)
        return self._separator

    def background(self, request: JobRequest) -> str:
        """What plays under ``request``'s dub: its own choice, else the mix.background setting."""
        return request.background or self.settings.mix.background

    @property
    def diarizer(self) -> Any:
        if self._diarizer is None:
            from pipelines.diarize import Diarizer

            self._diarizer = Diarizer(self.settings.diarize)
        return self._diarizer

    @property
    def fetcher(self) -> Any:
        if self._fetcher is None:
            from pipelines.fetch import Fetcher

            s = self.settings
            self._fetcher = Fetcher(s.fetch, s.storage.cache_dir, max_bytes=s.MAX_FILE_SIZE, max_duration_s=s.MAX_DURATION)
        return self._fetcher

    def with_settings(self, settings: Settings) -> Pipeline:
        """A pipeline over other ``settings`` that shares this one's stages (those injected or loaded so far; it
        loads any other itself, lazily). Re-dub runs through one with its translator settings changed."""
        return Pipeline(
            settings,
            asr=self._asr,
            translator=self._translator,
            tts=self._tts,
            separator=self._separator,
            diarizer=self._diarizer,
        )

    def validate(self, request: JobRequest) -> tuple[MediaInfo, list[str], str | None]:
        """Check a request before any work: languages, the input media, TTS voices (its speaker options and
        background: ``run`` checks them first, pipelines.jobinputs). Raises VTError."""
        targets = normalize_targets(request.target_languages)
        source = normalize_language(request.source_language) if request.source_language else None
        info = _probe_audio(request.input, self.settings)
        if request.burn_in and not info.has_video:
            raise BurnInNeedsVideo(f"burning subtitles in needs a video stream; {Path(request.input).name} has none")
        self.check_voices(request, targets)
        return info, targets, source

    def check_voices(self, request: JobRequest, targets: list[str]) -> None:
        """The job's voices (``request.voices``, checked against the catalog) and, for a dub, each target's voice.
        Raises InvalidVoice (a job's voice), UnknownLanguage or ModelError (no voice configured for a target)."""
        chosen = check_job_voices(request.voices, self.models_dir)
        if request.mode == "dub":
            probe = getattr(self.tts, "probe", None)  # the local TTS stage; a Serve handle's replica probes itself
            for lang in targets:
                voice = self.voice_for(request, lang)
                if probe is not None and lang in chosen:
                    probe(voice)  # a job's openai: voice whose server is down: an error before any work

    def voice_for(self, request: JobRequest, language: str) -> str:
        """The voice that speaks ``language`` in this job: the request's own (``voices``), else the TTS stage's
        (settings tts.voices, else the catalog's default, else espeak-ng). Raises what ``check_voices`` raises."""
        lang = normalize_language(language)
        chosen = check_job_voices(request.voices, self.models_dir) if request.voices else {}
        return chosen[lang] if lang in chosen else str(self.tts.voice_for(lang))

    def run(
        self,
        request: JobRequest,
        out_dir: Path,
        *,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        transcript: Transcript | None = None,
        translations: dict[str, list[Translation]] | None = None,
        speakers: dict[int, str] | None = None,
        diarization: Diarization | None = None,
        background: Path | None = None,
    ) -> JobResult:
        """Run one job; outputs appear in ``out_dir`` only when all of them are complete.

        ``transcript``, ``translations`` (per target language), ``diarization`` (the transcript's speakers) and
        ``background`` (the input's background stem, for mix.background 'separate') may be given when an earlier
        stage ran elsewhere (the Ray Data batch's actor pools); those stages are then skipped. ``speakers``
        (sentence id -> speaker label, a re-dub's) overrides diarization's speaker of those sentences.
        """
        from pipelines.fetch import fetch_input
        from pipelines.subsource import subtitle_kind

        # Before a URL is fetched: a bad voice is no work at all. Canonical codes from here on (the report's keys).
        request = request.model_copy(update={"voices": check_job_voices(request.voices, self.models_dir)})
        # The same speaker and background rules as every entrypoint's (counts, speaker voices, separation model).
        request = check_settings_inputs(self.settings, request)
        request, fetched = fetch_input(self.fetcher, request, progress, should_cancel)  # a URL -> a local file
        if subtitle_kind(request.input) is not None:
            from pipelines.subjob import run_subtitle_job

            return run_subtitle_job(self, request, out_dir, progress, should_cancel, translations=translations)
        info, targets, source = self.validate(request)
        job = _JobRun(self, request, info, targets, source, progress, should_cancel)
        job.preset_transcript, job.preset_translations = transcript, translations or {}
        job.preset_speakers = speakers or {}
        job.preset_diarization, job.preset_background = diarization, background
        if fetched is not None:
            job.fetch_info = fetched
            job.timings.add(Stage.FETCH.value, fetched["seconds"])
        with staging_dir(out_dir) as staging:
            result = job.execute(staging)
            result.outputs = _publish_all(result.outputs, Path(out_dir))
            return result

    def transcribe(
        self,
        input: str | Path,
        *,
        language: str | None = None,
        out_dir: Path | None = None,
        stem: str | None = None,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> Transcription:
        """Extract, ASR and segment ``input``: the stages (and stage cache) of :meth:`run`, without the targets.

        ``language=None`` detects it. With ``out_dir``, ``<stem>.<lang>.srt``, ``.vtt`` and ``.json`` (the
        transcript with its sentences) appear there together, once all are written; ``stem`` defaults to the
        input's. Raises VTError (InputNotFound, InvalidMedia, NoAudioStream, UnknownLanguage, ModelError).
        """
        source = normalize_language(language) if language else None
        run = _InputRun(self, _probe_audio(input, self.settings), source, progress, should_cancel)
        transcript, sentences = run.source_stages()
        result = Transcription(transcript, sentences, run.source_cues)
        if out_dir is None:
            return result
        stem = stem or Path(input).stem
        with staging_dir(out_dir) as staging:
            outputs = write_subtitles(result.cues, staging, stem, transcript.language)
            doc = {**transcript.to_dict(), "sentences": [asdict(x) for x in sentences]}
            text = json.dumps(doc, ensure_ascii=False, indent=2)
            outputs["json"] = cache.atomic_write_text(staging / f"{stem}.{transcript.language}.json", text)
            result.outputs = _publish_all(outputs, Path(out_dir))
        return result


def _publish_all(outputs: dict[str, Path], out_dir: Path) -> dict[str, Path]:
    """Move finished files from a staging folder into ``out_dir``; returns their new paths, name for name."""
    final = {}
    for name, path in outputs.items():
        dst = out_dir / path.name
        if path.exists():  # the same file may stand under two names (target == source language)
            publish(path, dst)
        final[name] = dst
    return final


def translate_cached(
    pipe: Pipeline,
    stage_cache: cache.StageCache,
    sentences: list[Sentence],
    src: str,
    lang: str,
    glossary: dict[str, str],
) -> list[Translation]:
    """``sentences`` from ``src`` into ``lang`` through the input's ``stage_cache``, keyed over the sentences,
    both languages, the glossary and the translator settings; ``pipe.translator`` loads and runs only on a miss.
    The runner and the Ray Data batch's translate actors share it (and so the cache). Translator errors propagate."""
    k = translation_key(pipe, sentences, src, lang, glossary)
    cached = stage_cache.get_json("translate", k)
    if cached is not None:
        return load_translations(cached)
    result: list[Translation] = pipe.translator.translate(
        sentences, source_language=src, target_language=lang, glossary=glossary
    )
    stage_cache.put_json("translate", k, dump_translations(result))
    return result


def translation_key(pipe: Pipeline, sentences: list[Sentence], src: str, lang: str, glossary: dict[str, str]) -> str:
    """The stage-cache key of ``sentences``' translation (see ``translate_cached``)."""
    settings = pipe.settings.translator.model_dump(mode="json")
    return cache.key("tr", settings, src, lang, glossary, [s.text for s in sentences])


class _InputRun:
    """The once-per-input stages of one run (extract, ASR, segment), each cached in the input's StageCache;
    the transcription entrypoints stop here, a job (``_JobRun``) goes on per target language."""

    def __init__(
        self,
        pipe: Pipeline,
        info: MediaInfo,
        source: str | None,
        progress: ProgressFn | None,
        should_cancel: CancelFn | None,
    ) -> None:
        self.pipe, self.info, self.source = pipe, info, source
        self.settings = pipe.settings
        self.progress = progress or (lambda stage, fraction, language: None)
        self.should_cancel = should_cancel or (lambda: False)
        self.timings = StageTimings()
        self.notes: list[str] = []
        self.preset_transcript: Transcript | None = None
        self.source_cues: list[Cue] = []
        self.subtitles_path: str | None = None  # --source-subtitles: its cues replace ASR
        self.subtitles_info: dict[str, Any] | None = None
        self.fetch_info: dict[str, Any] | None = None
        self.preset_speakers: dict[int, str] = {}  # sentence id -> speaker, over diarization's (a re-dub's edits)
        self.preset_diarization: Diarization | None = None
        self.preset_background: Path | None = None

    @contextmanager
    def stage(self, name: Stage, language: str | None = None, *, announce: bool = True) -> Iterator[None]:
        """Time one stage and report it as started (0.0) and done (1.0); ``language``: its target, if any.
        ``announce=False``: only time it (the rest of a stage that the overlapped run started and reported)."""
        if self.should_cancel():
            raise JobCancelled("the job was cancelled")
        if announce:
            self.progress(name.value, 0.0, language)
        started = time.perf_counter()
        yield
        self.timings.add(name.value, time.perf_counter() - started)
        self.progress(name.value, 1.0, language)

    def seconds_progress(self, name: Stage) -> Callable[[float], None]:
        """A stage's ``progress`` callback for the seconds of input done so far (see ``fraction_progress``)."""
        duration_s = max(self.info.duration_s, 1e-3)
        fraction = self.fraction_progress(name)
        return lambda done_s: fraction(done_s / duration_s)

    def fraction_progress(self, name: Stage) -> Callable[[float], None]:
        """A stage's ``progress`` callback for its fraction done (0-1, kept below 1.0 until the stage ends). A
        cancel requested meanwhile stops the stage there (JobCancelled), so a long one need not run to its end."""

        def report(fraction: float) -> None:
            if self.should_cancel():
                raise JobCancelled("the job was cancelled")
            self.progress(name.value, min(max(fraction, 0.0), 0.99), None)

        return report

    def source_stages(self) -> tuple[Transcript, list[Sentence]]:
        """Extract, ASR, segment: the transcript and its sentences; sets ``cache`` and ``source_cues``."""
        return self.recognise(self.extract())

    def extract(self) -> Path:
        """The extract stage: sets ``cache``; the 16 kHz wav's path (not written when no ASR will read it)."""
        with self.stage(Stage.EXTRACT):
            self.cache = cache.StageCache(self.settings.storage.cache_dir, cache.file_digest(self.info.path))
            wav = self.cache.path("audio16k.wav")
            if not wav.is_file() and self.preset_transcript is None and self.subtitles_path is None:
                media.extract_audio(self.info, wav, max_duration_s=self.settings.MAX_DURATION)
        return wav

    def recognise(self, wav: Path) -> tuple[Transcript, list[Sentence]]:
        """ASR (or the source subtitles) and segment, after ``extract``; sets ``source_cues``."""
        if self.subtitles_path is not None and self.preset_transcript is None:
            from pipelines.subsource import load_source_transcript

            with self.stage(Stage.SUBTITLES):
                transcript, self.subtitles_info, notes = load_source_transcript(
                    self.subtitles_path, self.source, self.info.duration_s
                )
                self.notes += notes
        else:
            with self.stage(Stage.ASR):
                transcript = self.transcribe(wav)
        if self.settings.diarize.enabled and self.preset_diarization is not None:
            from pipelines.diarize import apply_speakers

            self.diarization = self.preset_diarization  # found elsewhere (the batch's diarization actors)
            self.notes.extend(self.preset_diarization.notes)
            transcript = apply_speakers(transcript, self.preset_diarization)
        elif self.settings.diarize.enabled and wav.is_file():
            from pipelines.diarize import diarize_step

            with self.stage(Stage.DIARIZE):
                transcript = diarize_step(self, wav, transcript)
        elif self.settings.diarize.enabled:  # a re-dub whose audio left the cache: the saved transcript's speakers
            from pipelines.diarize import kept_diarization

            self.diarization = kept_diarization(transcript)
        with self.stage(Stage.SEGMENT):
            sentences, self.source_cues = transcript_cues(
                transcript,
                media_end_s=self.info.duration_s,
                speaker_labels=self.settings.diarize.subtitle_labels,
                speakers=self.preset_speakers,
            )
        return transcript, sentences

    def transcribe(self, wav: Path) -> Transcript:
        known = self.known_transcript()
        if known is not None:
            return known
        transcript: Transcript = self.pipe.asr(wav, language=self.source)
        self.cache_transcript(transcript)
        return transcript

    def known_transcript(self) -> Transcript | None:
        """The transcript given to the run, else the stage cache's, else None (ASR must run)."""
        if self.preset_transcript is not None:
            return self.preset_transcript
        cached = self.cache.get_json("asr", cache.key("asr", self.settings.asr.model_dump(), self.source))
        return Transcript.from_dict(cached) if cached is not None else None

    def cache_transcript(self, transcript: Transcript) -> None:
        self.cache.put_json("asr", cache.key("asr", self.settings.asr.model_dump(), self.source), transcript.to_dict())


class _JobRun(_InputRun):
    """One run of the pipeline over one job request: the per-input stages, then each target language."""

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
        super().__init__(pipe, info, source, progress, should_cancel)
        self.request, self.targets = request, targets
        self.stem = request.output_stem or Path(request.input).stem
        self.subtitles_path = request.source_subtitles
        self.preset_translations: dict[str, list[Translation]] = {}
        self.overlap = self.settings.pipeline.overlap
        self.voices: dict[str, str] = {}  # per target: the voice spec this job speaks it with

    def voice(self, lang: str) -> str:
        """This job's voice for ``lang`` (``Pipeline.voice_for``), asked once per job."""
        if lang not in self.voices:
            self.voices[lang] = self.pipe.voice_for(self.request, lang)
        return self.voices[lang]

    def speak(self, translations: list[Translation], lang: str) -> list[Clip]:
        """One clip per translation, in this job's voice for ``lang``."""
        return self.pipe.tts(translations, lang, voice=self.voice(lang)) if translations else []

    def speak_counted(self, translations: list[Translation], lang: str) -> tuple[list[Clip], int]:
        """TTS in this job's voice: one clip per line, and how many were synthesised (not from the TTS cache)."""
        clips = self.speak(translations, lang)
        return clips, int(getattr(self.pipe.tts, "synthesized_count", len(clips)))

    def known_translations(self, sentences: list[Sentence], src: str, lang: str) -> list[Translation] | None:
        """The translations given to the run, the same-language copy or the stage cache's; None: the LLM must run."""
        if not sentences:
            return []
        if lang in self.preset_translations:  # before the same-language shortcut: a re-dub may edit those lines
            return self.preset_translations[lang]
        if lang == src:
            return [Translation(s.id, s.text, s.text) for s in sentences]
        k = translation_key(self.pipe, sentences, src, lang, dict(self.request.glossary))
        cached = self.cache.get_json("translate", k)
        return load_translations(cached) if cached is not None else None

    def execute(self, staging: Path) -> JobResult:
        from pipelines import report as report_mod
        from pipelines.overlap_run import stream_source

        started = time.perf_counter()
        wav = self.extract()
        first: Front | None = None
        streamed = stream_source(self, wav, self.targets[0]) if self.overlap else None
        if streamed is not None:
            transcript, sentences, first = streamed
        else:
            transcript, sentences = self.recognise(wav)
        src = transcript.language
        if not sentences:
            self.notes.append("no speech detected: the transcript is empty and the outputs carry the original audio")
        subtitles = write_subtitles(self.source_cues, staging, self.stem, src)
        outputs = {"source_srt": subtitles["srt"], "source_vtt": subtitles["vtt"]}
        if sentences and self.request.mode == "dub" and self.pipe.background(self.request) == "separate":
            _ = self.separated  # once per input, before the targets (each mixes over it)
        per_target: dict[str, Any] = {}
        for lang in self.targets:
            front, first = first, None  # the first target's translations (and speech) may come with the source
            target_outputs, per_target[lang] = self.run_target(staging, lang, src, sentences, front)
            outputs.update({f"{lang}.{k}": v for k, v in target_outputs.items()})
        self.timings.add("total", time.perf_counter() - started)
        report = report_mod.build_report(self, transcript, sentences, per_target)
        report_path = staging / output_names(self.stem, "x", src)["report"]
        cache.atomic_write_text(report_path, report_mod.dumps(report))
        outputs["report"] = report_path
        return JobResult(outputs=outputs, report=report, transcript=transcript, notes=self.notes)

    def translate(self, sentences: list[Sentence], src: str, lang: str) -> list[Translation]:
        known = self.known_translations(sentences, src, lang)
        if known is not None:
            return known
        return translate_cached(self.pipe, self.cache, sentences, src, lang, dict(self.request.glossary))

    def run_target(
        self, staging: Path, lang: str, src: str, sentences: list[Sentence], front: Front | None = None
    ) -> tuple[dict[str, Path], dict[str, Any]]:
        from pipelines.overlap_run import overlapped_front

        if front is None and self.overlap and self.request.mode == "dub":
            front = overlapped_front(self, sentences, src, lang)  # translate and TTS side by side
        if front is None:
            with self.stage(Stage.TRANSLATE, lang):
                translations = self.translate(sentences, src, lang)
        else:
            translations = front.translations
        details: dict[str, Any] = {"translations": translations, "plan": None, "resynthesized": 0}
        dub_wav: Path | None = None
        if self.request.mode == "dub":
            spoken = front.spoken if front is not None else None
            with self.stage(Stage.TTS, lang, announce=spoken is None):
                dub_wav, plan_info = self.dub(staging, lang, sentences, translations, spoken)
            details.update(plan_info)  # its translations: the lines shortened for the dub, if any
        # The subtitles (sidecar files, the mp4's track and the burn-in) come from the final lines.
        details["cues"] = self.target_cues(sentences, details["translations"])
        files = write_subtitles(details["cues"], staging, self.stem, lang)
        with self.stage(Stage.MUX, lang):
            mp4 = self.mux(staging / output_names(self.stem, lang, src)["mp4"], lang, src, files["srt"], dub_wav)
        return {"mp4": mp4, **files}, details

    def target_cues(self, sentences: list[Sentence], translations: list[Translation]) -> list[Cue]:
        from pipelines.cues import split_cues, timed_from_translations

        labels = self.settings.diarize.subtitle_labels
        return split_cues(
            timed_from_translations(sentences, translations, speaker_labels=labels), media_end_s=self.info.duration_s
        )

    def dub(
        self,
        staging: Path,
        lang: str,
        sentences: list[Sentence],
        translations: list[Translation],
        spoken: tuple[list[Clip], int] | None = None,
    ) -> tuple[Path, dict[str, Any]]:
        """TTS (unless ``spoken``: the clips and how many were synthesised, from the overlapped run), the timing
        fit (and shortening) and the mix: the dub track and the plan's details for the report."""
        from pipelines.diarize import assign_voices
        from pipelines.mix import build_dub_track

        translations = assign_voices(self, lang, sentences, translations)  # a voice per speaker
        if spoken is not None and any(t.voice for t in translations):
            spoken = None  # the overlapped run spoke every line in the language's one voice
        clips, resynthesized = spoken if spoken is not None else self.speak_counted(translations, lang)
        plan, translations, clips, extra = self.fit(lang, sentences, translations, clips)
        resynthesized += extra
        self.progress(Stage.TTS.value, 0.8, lang)
        background = self.background_used = self.pipe.background(self.request)
        wav = build_dub_track(
            self.separated if background == "separate" and translations else Path(self.request.input),
            plan,
            clips,
            settings=self.settings.mix.model_copy(update={"background": background}),
            duration_s=self.info.duration_s,
            out_wav=staging / f".dub.{lang}.wav",
        )
        voice = self.voice(lang)
        fallback = self.fallback(lang, voice)
        info = {"plan": plan, "resynthesized": resynthesized, "voice": voice, "voice_fallback": fallback}
        return wav, {**info, "translations": translations}

    def fallback(self, lang: str, voice: str) -> str | None:
        """Why espeak-ng speaks ``lang`` (no catalog voice, none installed, none better), for the report."""
        from pipelines.voices import fallback_reason

        chosen = {**self.settings.tts.voices, **self.request.voices}
        return fallback_reason(lang, voice, chosen, self.settings.storage.models_dir)

    @cached_property
    def separated(self) -> Path:
        """The input's background stem (its voice removed): the one given to the run (it was separated elsewhere:
        the Ray Data batch's separation actors), else separated once per input and model: cached."""
        from pipelines.separate import stem_path

        if self.preset_background is not None:
            return self.preset_background
        stem = stem_path(self.cache, self.pipe.models_dir)
        if stem.is_file():
            self.cache.hits.append(Stage.SEPARATE.value)
        else:
            with self.stage(Stage.SEPARATE):
                self.pipe.separator(Path(self.request.input), stem, progress=self.seconds_progress(Stage.SEPARATE))
        return stem

    def fit(
        self, lang: str, sentences: list[Sentence], translations: list[Translation], clips: list[Clip]
    ) -> tuple[DubPlan, list[Translation], list[Clip], int]:
        """Plan ``clips`` into the sentences' slots; lines that still overflow are shortened (when enabled) and
        planned again. Returns the plan, the final lines and clips, and how many clips were re-synthesised."""
        slots = [
            Slot(s.id, s.start_s, s.end_s, sentences[i + 1].start_s if i + 1 < len(sentences) else None)
            for i, s in enumerate(sentences)
        ]
        plan, extra = self.plan(slots, clips), 0
        if self.settings.translator.shorten_ratio > 0 and any(p.overflow_s > 0 for p in plan.items):
            translations, clips, extra = self.shorten_overflow(lang, slots, plan, translations, clips)
            plan = self.plan(slots, clips)
        return plan, translations, clips, extra

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
            translations[i] = replace(translations[i], text=shorter, flags=(*translations[i].flags, "shortened"))
            clips[i] = self.speak([translations[i]], lang)[0]
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
